"""What happened: the audit log, and the outbox of events for subscriber tasks."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .adapters import Adapter, AdapterVersion
from .common import TimeStamped


class AuditEvent(TimeStamped):
    """What happened, by whom: the hub's append-only log (and the outbox of its events)."""

    class Kind(models.TextChoices):
        VERSION_CREATED = "version.created"
        VERSION_DEPRECATED = "version.deprecated"
        VERSION_STATUS = "version.status"
        ALIAS_SET = "alias.set"
        ALIAS_DELETED = "alias.deleted"
        ADAPTER_CREATED = "adapter.created"
        ADAPTER_UPDATED = "adapter.updated"
        ADAPTER_DELETED = "adapter.deleted"
        NAMESPACE_CREATED = "namespace.created"
        BASE_MODEL_REGISTERED = "base_model.registered"
        BASE_MODEL_REVISION_ADDED = "base_model.revision_added"

    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class OutboxEvent(models.Model):
    """One event for one subscriber task, written in the transaction that causes it.

    It is sent right after commit, and again by the periodic ``hub.outbox_deliver`` until the
    broker takes it (``sent_at``), so a broker outage delays an event but never loses it.
    Delivery is at least once: the tasks it names are idempotent.
    """

    event = models.CharField(max_length=64, db_index=True)
    task = models.CharField(max_length=200, help_text="the Celery task name it is sent to")
    args = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="when the broker accepted it")
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["created_at"], condition=Q(sent_at__isnull=True), name="outbox_pending")]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else f"pending after {self.attempts} attempts"
        return f"{self.event} -> {self.task} {self.args} ({state})"
