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
        WITHDRAWN = "withdrawn", "rejected by a re-evaluation"

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
                condition=Q(reason__in=["accepted", "deployed", "undeployed", "deprecated", "withdrawn"]),
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


class Replica(models.Model):
    """One engine server for a base model, where the gateway may send that base's requests.

    Registered by ``serving_replica_add`` (an engine started elsewhere), by
    ``serving_engine`` (``managed``: a local process the supervisor restarts), or made
    implicitly for ``PEFTHUB_VLLM_URL`` so a single-engine install needs no registration.
    ``health`` is the reconciler's verdict: a replica is ``healthy`` only once it answers
    ``/health`` and holds every adapter placed on it; the gateway routes to healthy ones
    (to ``unknown`` ones only when none is healthy), never to ``unhealthy`` ones.
    """

    class Kind(models.TextChoices):
        VLLM = "vllm"
        PEFT = "peft"

    class Health(models.TextChoices):
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"
        UNKNOWN = "unknown", "unknown (not checked yet)"

    base_model = models.ForeignKey("hub.BaseModel", on_delete=models.CASCADE, related_name="replicas")
    url = models.CharField(max_length=300, unique=True, help_text="the engine's base URL, e.g. http://gpu-3:8000")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.VLLM)
    max_loras = models.PositiveIntegerField(default=4, help_text="adapters in one batch (vLLM --max-loras)")
    max_cpu_loras = models.PositiveIntegerField(
        default=9, help_text="adapters held at once, the base's identity LoRA included (vLLM --max-cpu-loras)"
    )
    managed = models.BooleanField(default=False, help_text="a local process `serving_engine` starts and restarts")
    base_only = models.BooleanField(default=False, help_text="runs without LoRA: base-model requests only")
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN, db_index=True)
    last_error = models.TextField(blank=True, help_text="why the last check failed (empty when healthy)")
    failures = models.PositiveIntegerField(default=0, help_text="failed health checks in a row")
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="when it last answered /health")
    checked_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="a reconciler holds it until then")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["base_model_id", "url"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=["vllm", "peft"]), name="replica_kind_valid"),
            models.CheckConstraint(
                condition=Q(health__in=["healthy", "unhealthy", "unknown"]), name="replica_health_valid"
            ),
            models.CheckConstraint(condition=Q(max_cpu_loras__gte=1) & Q(max_loras__gte=1), name="replica_capacity"),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({self.health})"

    @property
    def adapter_slots(self) -> int:
        """How many adapters it holds besides the identity LoRA the base is served through."""
        return self.max_cpu_loras if self.base_only else max(self.max_cpu_loras - 1, 1)


class Placement(models.Model):
    """An adapter the hub wants a replica to hold (``desired``), and whether it does (``loaded``).

    ``deployment`` is empty for the base model's identity LoRA. The reconciler loads what is
    desired and unloads from the replica what no row asks for.
    """

    class State(models.TextChoices):
        DESIRED = "desired"
        LOADED = "loaded"

    replica = models.ForeignKey(Replica, on_delete=models.CASCADE, related_name="placements")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, null=True, blank=True, related_name="placements"
    )
    engine_model = models.CharField(max_length=100, help_text="the adapter's name inside the engine")
    state = models.CharField(max_length=8, choices=State.choices, default=State.DESIRED)
    loaded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["replica_id", "engine_model"]
        constraints = [
            models.UniqueConstraint(fields=["replica", "engine_model"], name="placement_once_per_replica"),
            models.CheckConstraint(condition=Q(state__in=["desired", "loaded"]), name="placement_state_valid"),
            models.CheckConstraint(
                condition=Q(state="desired") | Q(loaded_at__isnull=False), name="placement_loaded_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.engine_model} on {self.replica.url} ({self.state})"
