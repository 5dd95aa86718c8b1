"""Who may do what: namespaces, their members, and API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .common import TimeStamped

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Namespace(TimeStamped):
    """A user's or an organisation's space; adapters live in one."""

    name = models.CharField(max_length=96)
    description = models.TextField(blank=True)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="namespaces"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="namespace_name_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TimeStamped):
    class Role(models.TextChoices):
        OWNER = "owner"
        WRITER = "writer"
        READER = "reader"

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.WRITER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "user"], name="membership_unique"),
            models.CheckConstraint(condition=Q(role__in=["owner", "writer", "reader"]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.namespace} ({self.role})"


def default_token_scopes() -> list[str]:
    """What a token gets unless it asks: everything but minting more tokens."""
    return ["read", "serve", "write"]


class ApiToken(TimeStamped):
    """A bearer token. Only its sha256 is stored; the secret is shown once.

    ``scopes`` say what it may do: ``read`` (GET the API), ``write`` (change anything),
    ``serve`` (call the serving gateway), ``tokens`` (create and revoke tokens).
    """

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"
        SERVE = "serve"
        TOKENS = "tokens"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="first characters, to tell tokens apart")
    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=default_token_scopes, help_text="sorted list of Scope values")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="none: valid until revoked")
    # The token that minted this one (none: made from a session or the CLI). Revoking a
    # token revokes everything it minted, so a leaked token cannot leave heirs behind.
    created_by_token = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="minted"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("created_at")),
                name="api_token_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
