"""What is deployed, and how much it is used. The hub owns adapters and versions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Deployment(models.Model):
    """A version that is live (callable through the gateway) or was and is no more.

    ``live`` is the registry's wish; whether the engine holds the adapter right now is the
    engine's business (it may have been evicted, or the engine restarted) and the
    controller reloads it on the next request.
    """

    class Reason(models.TextChoices):
        ACCEPTED = "accepted"
        DEPLOYED = "deployed", "deployed by its owner"
        UNDEPLOYED = "undeployed", "undeployed by its owner"
        DEPRECATED = "deprecated"

    version = models.OneToOneField("hub.AdapterVersion", on_delete=models.CASCADE, related_name="deployment")
    live = models.BooleanField(default=True, db_index=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    engine = models.CharField(max_length=32, help_text="the engine that serves it, e.g. vllm or peft")
    engine_model = models.CharField(max_length=100, unique=True, help_text="the adapter's name inside the engine")
    path = models.CharField(max_length=500, help_text="the materialised folder the engine reads")
    deployed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=["accepted", "deployed", "undeployed", "deprecated"]),
                name="deployment_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(live=False) | Q(reason__in=["accepted", "deployed"]),
                name="deployment_live_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({'live' if self.live else 'off'})"


class ModelUsage(models.Model):
    """Request, token and latency totals per served model name (a base or a version)."""

    model = models.CharField(max_length=300, unique=True, help_text="`base-name` or `ns/name@vN`")
    version = models.ForeignKey(
        "hub.AdapterVersion", on_delete=models.CASCADE, null=True, blank=True, related_name="usage"
    )
    base_model = models.ForeignKey("hub.BaseModel", on_delete=models.CASCADE, related_name="usage")
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    latency_seconds_total = models.FloatField(default=0.0)
    last_request_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.CheckConstraint(
                condition=Q(requests__gte=0) & Q(errors__gte=0) & Q(prompt_tokens__gte=0) & Q(completion_tokens__gte=0),
                name="usage_counts_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.model
