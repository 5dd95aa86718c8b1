"""Base models: what adapters are trained on, each revision of their weights, and their other names."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from .common import TimeStamped


class Geometry(models.Model):
    """What uploads are checked against: a base's architecture and the shape of its modules,
    for the current revision (:class:`BaseModel`) and for each one kept (:class:`BaseModelRevision`)."""

    architecture = models.CharField(max_length=100)
    hidden_size = models.PositiveIntegerField()
    num_layers = models.PositiveIntegerField()
    num_attention_heads = models.PositiveIntegerField()
    num_key_value_heads = models.PositiveIntegerField()
    vocab_size = models.PositiveIntegerField()
    # {"model.layers.0.self_attn.q_proj": ["linear", 576, 576], ...}
    modules = models.JSONField(default=dict)
    chat_template = models.TextField(blank=True)

    class Meta:
        abstract = True


class BaseModel(TimeStamped, Geometry):
    """A base model adapters are trained on; its module shapes validate every upload."""

    name = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    revision = models.CharField(max_length=64, help_text="sha256 over the weights folder")
    license = models.CharField(max_length=100, blank=True)
    local_path = models.CharField(max_length=500, help_text="HF folder the workers load")
    config = models.JSONField(default=dict, help_text="the model's config.json")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BaseModelRevision(TimeStamped, Geometry):
    """One revision of a base model's weights, kept for the adapter versions validated on it.

    The base model row describes its current revision (what new uploads are checked
    against); an :class:`AdapterVersion`'s ``base_revision`` names the row here whose
    folder and shapes it was made for.
    """

    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="revisions")
    revision = models.CharField(max_length=64, help_text="sha256 over the weights folder")
    local_path = models.CharField(max_length=500, help_text="HF folder of this revision")
    config = models.JSONField(default=dict)
    # {"model.safetensors": {"sha256": ..., "size": ...}, ...}: what the HF protocol lists
    # and serves (hub.hf.api); empty until first needed for a revision added before it.
    files = models.JSONField(default=dict, blank=True, help_text="the revision folder's files, digests and sizes")

    class Meta:
        ordering = ["base_model", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["base_model", "revision"], name="base_model_revision_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.base_model.name}@{self.revision[:12]}"


class BaseModelAlias(models.Model):
    """Another name a base model goes by, e.g. ``HuggingFaceTB/SmolLM2-135M-Instruct``."""

    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=300)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("alias"), name="base_model_alias_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.alias


class BaseModelImport(TimeStamped):
    """A base model (or a new revision of one) being downloaded from a Hugging Face hub for a
    staff request over REST or in the admin: the download runs on a worker
    (``hub.base_model_import``, the ``downloads`` queue), never in the web request."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    from_hub = models.CharField(max_length=200, help_text="the repo id on the hub, e.g. ORG/NAME")
    revision = models.CharField(max_length=100, help_text="the revision asked for")
    commit = models.CharField(max_length=64, help_text="the commit it named when asked: what is downloaded")
    endpoint = models.CharField(max_length=500, blank=True, help_text="the hub (HF_ENDPOINT when asked)")
    name = models.SlugField(max_length=100)
    aliases = models.JSONField(default=list, blank=True)
    license = models.CharField(max_length=100, blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    base_model = models.ForeignKey(BaseModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")
    new_revision = models.BooleanField(default=False, help_text="whether it added a revision the hub did not have")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="base_model_imports"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.from_hub}@{self.commit[:12]} as {self.name} ({self.status})"
