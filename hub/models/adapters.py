"""Adapters, their immutable versions, the files and blobs of each, and aliases."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .accounts import Namespace
from .basemodels import BaseModel
from .common import TimeStamped


class TaskTag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


class Adapter(TimeStamped):
    """``namespace/name``: a line of immutable versions."""

    namespace = models.ForeignKey(Namespace, on_delete=models.PROTECT, related_name="adapters")
    name = models.CharField(max_length=96)
    private = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Denormalised so the catalog filters and sorts on the newest card in one query.
    latest_version = models.ForeignKey(
        "AdapterVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version_count = models.PositiveIntegerField(default=0)
    # Copies of the newest version's figures, indexed, so sorting the catalog by them
    # does not join and sort every version.
    latest_size_bytes = models.BigIntegerField(null=True, blank=True)
    latest_trainable_params = models.BigIntegerField(null=True, blank=True)
    # The sum of its versions' downloads, kept by the same F() update that counts one, so the
    # catalog sorts by it from an index.
    downloads = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint("namespace", Lower("name"), name="adapter_name_unique_in_namespace_ci"),
        ]
        indexes = [
            models.Index(fields=["private", "-updated_at"]),
            models.Index(fields=["private", "-latest_size_bytes"]),
            models.Index(fields=["private", "-latest_trainable_params"]),
            models.Index(fields=["private", "-downloads"], name="hub_adapter_downloads"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace.name}/{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.namespace.name}/{self.name}"


class Blob(TimeStamped):
    """File content, stored once under its sha256 whatever the number of versions using it."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=0), name="blob_size_non_negative"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="blob_sha256_hex"),
        ]

    def __str__(self) -> str:
        return self.sha256

    @property
    def storage_key(self) -> str:
        return f"sha256/{self.sha256[:2]}/{self.sha256[2:4]}/{self.sha256}"


class AdapterVersion(TimeStamped):
    """One immutable upload. Its card is typed columns, so the catalog can filter on it."""

    class Method(models.TextChoices):
        LORA = "lora", "LoRA"
        QLORA = "qlora", "QLoRA"
        DORA = "dora", "DoRA"
        PROMPT_TUNING = "prompt_tuning", "Prompt tuning"
        PREFIX_TUNING = "prefix_tuning", "Prefix tuning"
        P_TUNING = "p_tuning", "P-tuning"
        IA3 = "ia3", "IA³"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending evaluation"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, db_index=True)
    # sha256 over the files that can change the adapter's answers (all but the card and
    # documentation, see hub.services.adapters.answers_hash): two versions with the same one
    # score the same, so the evaluator reuses runs across a README-only commit.
    answers_hash = models.CharField(max_length=64, db_index=True, default="", blank=True)
    # HF's convention: one fetch of config.json / adapter_config.json is one download.
    downloads = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    status_reasons = models.JSONField(default=list, blank=True)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    deprecation_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    # --- card: the method ---
    peft_type = models.CharField(max_length=32, help_text="peft's own name, e.g. LORA")
    method = models.CharField(max_length=16, choices=Method.choices, db_index=True)
    rank = models.PositiveIntegerField(null=True, blank=True)
    alpha = models.FloatField(null=True, blank=True)
    target_modules = models.JSONField(default=list, blank=True)
    num_virtual_tokens = models.PositiveIntegerField(null=True, blank=True)
    trainable_params = models.BigIntegerField()
    size_bytes = models.BigIntegerField(help_text="all files of the version")
    quantization_bits = models.PositiveSmallIntegerField(null=True, blank=True)
    quantization_type = models.CharField(max_length=32, blank=True)
    config = models.JSONField(default=dict, help_text="adapter_config.json as validated")
    flags = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True, help_text="accepted, but say so: e.g. LoRA B all zero")

    # --- card: what it is for and where it came from ---
    task_tags = models.ManyToManyField(TaskTag, blank=True, related_name="versions")
    license = models.CharField(max_length=100, blank=True, db_index=True)
    datasets = models.JSONField(default=list, blank=True)
    training_time_seconds = models.FloatField(null=True, blank=True)
    training_hardware = models.CharField(max_length=200, blank=True)
    num_training_examples = models.PositiveIntegerField(null=True, blank=True)
    training_run_url = models.URLField(max_length=500, blank=True)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="versions")
    base_revision = models.CharField(max_length=64)
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children")
    # "namespace/name@v3", kept with the version so listing lineage needs no joins.
    parent_ref = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="free-form training metadata")
    readme = models.TextField(blank=True)
    # The commit that made the version, when it came through the HF protocol (or said so).
    commit_title = models.CharField(max_length=300, blank=True)
    commit_description = models.TextField(blank=True)

    class Meta:
        ordering = ["adapter", "-number"]
        # The catalog's card filters select version ids by one field (hub.filters): with
        # the id in the index, that is an index-only scan, never a pass over the wide rows.
        indexes = [
            models.Index(fields=["method", "id"], name="hub_version_method_id"),
            models.Index(fields=["license", "id"], name="hub_version_license_id"),
            models.Index(fields=["status", "id"], name="hub_version_status_id"),
            models.Index(fields=["base_model", "id"], name="hub_version_base_model_id"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["adapter", "number"], name="version_number_unique"),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_positive"),
            models.CheckConstraint(condition=Q(content_hash__regex=r"^[0-9a-f]{64}$"), name="version_hash_hex"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "accepted", "rejected"]),
                name="version_status_valid",
            ),
            models.CheckConstraint(condition=Q(rank__isnull=True) | Q(rank__gte=1), name="version_rank_positive"),
            models.CheckConstraint(
                condition=Q(trainable_params__gte=0) & Q(size_bytes__gte=0),
                name="version_sizes_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.adapter}@v{self.number}"

    @property
    def evaluation_hash(self) -> str:
        """What evaluation reuse keys on: the answers hash (a row from before it: the content)."""
        return self.answers_hash or self.content_hash


class VersionFile(models.Model):
    version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=255)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="version_files")

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["version", "path"], name="version_file_unique_path"),
        ]

    def __str__(self) -> str:
        return self.path


class Alias(models.Model):
    """A movable name for a version: ``latest``, ``production`` or anything the owner picks."""

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["adapter", "name"], name="alias_unique_per_adapter"),
            # Versions are addressed as v3 or 3 and by hash; an alias must not shadow them.
            models.CheckConstraint(condition=~Q(name__regex=r"^v?[0-9]+$"), name="alias_not_a_version_number"),
        ]

    def __str__(self) -> str:
        return self.name
