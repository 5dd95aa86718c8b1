"""Serializers only translate: request input to plain values, models to JSON."""

from __future__ import annotations

import json

from rest_framework import serializers

from .models import Adapter, AdapterVersion, ApiToken, BaseModel, BaseModelImport, Namespace


# --- input ---------------------------------------------------------------------------------
class NamespaceCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=96)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class MemberSetIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=["owner", "writer", "reader"], default="writer")


class AdapterCreateIn(serializers.Serializer):
    namespace = serializers.CharField(max_length=96)
    name = serializers.CharField(max_length=96)
    private = serializers.BooleanField(default=False)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class AdapterUpdateIn(serializers.Serializer):
    private = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class QuantizationIn(serializers.Serializer):
    bits = serializers.IntegerField(min_value=1, max_value=16)
    type = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class CardIn(serializers.Serializer):
    """Training metadata an upload may carry (the ``metadata`` JSON field)."""

    task_tags = serializers.ListField(
        child=serializers.SlugField(max_length=64), required=False, default=list, max_length=32
    )
    license = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    datasets = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, default=list, max_length=64
    )
    training_time_seconds = serializers.FloatField(min_value=0, required=False, allow_null=True)
    training_hardware = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    num_training_examples = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    training_run_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Field.parent at runtime; the stubs see a class attribute.
    parent = serializers.RegexField(  # type: ignore[assignment]
        r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._-]+)?$",
        required=False,
        allow_null=True,
        error_messages={"invalid": "give the parent as namespace/name@version"},
    )
    quantization = QuantizationIn(required=False, allow_null=True)
    extra = serializers.DictField(required=False, default=dict)


class MetadataField(serializers.JSONField):
    """A JSON object: a string in a multipart form, an object in a JSON body; blank is ``{}``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(binary=True, **kwargs)

    def to_internal_value(self, data):
        if data in ("", b"", None):
            return {}
        if not isinstance(data, (str, bytes)):
            data = json.dumps(data)
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("`metadata` must be a JSON object")
        return value


class VersionUploadIn(serializers.Serializer):
    """Multipart form: ``files`` (repeatable; or one tar/zip ``archive``) plus fields."""

    files = serializers.ListField(child=serializers.FileField(), required=False, default=list)
    archive = serializers.FileField(required=False)
    base_model = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    metadata = MetadataField(required=False, default=dict, help_text="card metadata, a JSON object")
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=16
    )


class AliasSetIn(serializers.Serializer):
    version = serializers.CharField(max_length=64, help_text="number, alias or content hash")


class DeprecateIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class TokenCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, default="token")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiToken.Scope.values),
        required=False,
        allow_empty=False,
        max_length=len(ApiToken.Scope.values),
        help_text="default: read, serve, write (a token minting one gives at most its own)",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="default: never")


class BaseModelAddIn(serializers.Serializer):
    from_hub = serializers.RegexField(
        r"^[\w.-]+(/[\w.-]+)?$", max_length=200, help_text="the repo to download from HF_ENDPOINT, e.g. ORG/NAME"
    )
    revision = serializers.CharField(max_length=100, help_text="the commit to download: pinned, not a branch")
    name = serializers.CharField(max_length=100, help_text="the hub's name for it, e.g. llama-3.1-8b-instruct")
    alias = serializers.CharField(max_length=300, required=False, help_text="another name it is known by")
    aliases = serializers.ListField(child=serializers.CharField(max_length=300), required=False, default=list)
    license = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


# --- output --------------------------------------------------------------------------------
class BaseModelOut(serializers.ModelSerializer):
    aliases = serializers.SerializerMethodField()
    target_modules = serializers.SerializerMethodField()

    class Meta:
        model = BaseModel
        fields = [
            "name",
            "display_name",
            "architecture",
            "revision",
            "license",
            "hidden_size",
            "num_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "vocab_size",
            "aliases",
            "target_modules",
            "created_at",
        ]

    def get_aliases(self, obj: BaseModel) -> list[str]:
        return sorted(a.alias for a in obj.aliases.all())

    def get_target_modules(self, obj: BaseModel) -> dict[str, list]:
        """Short module names adapters may target, with ``[kind, in, out]``."""
        short: dict[str, list] = {}
        for full, shape in obj.modules.items():
            short.setdefault(full.rsplit(".", 1)[-1], shape)
        return dict(sorted(short.items()))


class BaseModelImportOut(serializers.ModelSerializer):
    """A download staff asked for: poll ``url`` until ``status`` is ``done`` or ``failed``."""

    url = serializers.SerializerMethodField()
    base_model = serializers.SerializerMethodField()
    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = BaseModelImport
        fields = [
            "id",
            "url",
            "status",
            "error",
            "from_hub",
            "revision",
            "commit",
            "name",
            "aliases",
            "license",
            "base_model",
            "new_revision",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, obj: BaseModelImport) -> str:
        return f"/api/v1/base-model-imports/{obj.pk}/"

    def get_base_model(self, obj: BaseModelImport) -> dict | None:
        """The base model as added (its revision, shapes and aliases), once ``done``."""
        return BaseModelOut(obj.base_model).data if obj.base_model is not None else None


class NamespaceOut(serializers.ModelSerializer):
    class Meta:
        model = Namespace
        fields = ["name", "description", "created_at"]


class CardOut(serializers.Serializer):
    method = serializers.CharField()
    peft_type = serializers.CharField()
    rank = serializers.IntegerField(allow_null=True)
    alpha = serializers.FloatField(allow_null=True)
    target_modules = serializers.ListField(child=serializers.CharField())
    num_virtual_tokens = serializers.IntegerField(allow_null=True)
    trainable_params = serializers.IntegerField()
    size_bytes = serializers.IntegerField()
    quantization = serializers.SerializerMethodField()
    task_tags = serializers.SerializerMethodField()
    license = serializers.CharField()
    datasets = serializers.ListField(child=serializers.CharField())
    training_time_seconds = serializers.FloatField(allow_null=True)
    training_hardware = serializers.CharField()
    num_training_examples = serializers.IntegerField(allow_null=True)
    lineage = serializers.SerializerMethodField()
    flags = serializers.ListField(child=serializers.CharField())
    warnings = serializers.ListField(child=serializers.CharField())

    def get_quantization(self, obj: AdapterVersion) -> dict | None:
        if not obj.quantization_bits:
            return None
        return {"bits": obj.quantization_bits, "type": obj.quantization_type}

    def get_task_tags(self, obj: AdapterVersion) -> list[str]:
        return sorted(t.name for t in obj.task_tags.all())

    def get_lineage(self, obj: AdapterVersion) -> dict:
        return {
            "base_model": obj.base_model.name,
            "base_revision": obj.base_revision,
            "parent": obj.parent_ref or None,
            "training_run_url": obj.training_run_url,
        }


class FileOut(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField(source="blob.size")
    sha256 = serializers.CharField(source="blob.sha256")


class VersionOut(serializers.ModelSerializer):
    adapter = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="number")
    card = CardOut(source="*", read_only=True)
    files = FileOut(many=True)
    aliases = serializers.SerializerMethodField()
    deprecated = serializers.SerializerMethodField()

    class Meta:
        model = AdapterVersion
        fields = [
            "id",
            "adapter",
            "version",
            "content_hash",
            "status",
            "status_reasons",
            "deprecated",
            "deprecated_at",
            "deprecation_reason",
            "created_at",
            "downloads",
            "commit_title",
            "commit_description",
            "card",
            "aliases",
            "files",
            "metadata",
            "readme",
            "config",
        ]

    def get_adapter(self, obj: AdapterVersion) -> str:
        return f"{obj.adapter.namespace.name}/{obj.adapter.name}"

    def get_aliases(self, obj: AdapterVersion) -> list[str]:
        return sorted(a.name for a in obj.aliases.all())

    def get_deprecated(self, obj: AdapterVersion) -> bool:
        return obj.deprecated_at is not None


class VersionSummaryOut(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number")
    card = CardOut(source="*", read_only=True)

    class Meta:
        model = AdapterVersion
        fields = ["id", "version", "content_hash", "status", "deprecated_at", "created_at", "downloads", "card"]


class AdapterOut(serializers.ModelSerializer):
    namespace = serializers.CharField(source="namespace.name")
    full_name = serializers.CharField()
    # Nested serializers as fields: built once per page, not twice per row.
    latest = VersionSummaryOut(source="latest_version", allow_null=True, read_only=True)

    class Meta:
        model = Adapter
        fields = [
            "full_name",
            "namespace",
            "name",
            "private",
            "description",
            "version_count",
            "downloads",
            "created_at",
            "updated_at",
            "latest",
        ]


class AliasOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.number")
    updated_at = serializers.DateTimeField()


class TokenOut(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "expires_at",
            "created_by_token",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
