"""Writes of namespaces, memberships and API tokens."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from ..exceptions import Conflict, HubError, PermissionDenied
from ..models import (
    ApiToken,
    AuditEvent,
    Membership,
    Namespace,
    default_token_scopes,
)
from .common import RESERVED_NAMESPACES, _check_name

if TYPE_CHECKING:
    from django.contrib.auth.models import User


log = logging.getLogger(__name__)


# --- namespaces, tokens ----------------------------------------------------------------------
@transaction.atomic
def namespace_create(*, name: str, owner: User, description: str = "") -> Namespace:
    _check_name("namespace", name)
    if name.lower() in RESERVED_NAMESPACES:
        raise HubError(f"namespace name `{name}` is reserved; pick another", field="name")
    if Namespace.objects.filter(name__iexact=name).exists():
        raise Conflict(f"namespace `{name}` already exists", field="name")
    namespace = Namespace.objects.create(name=name, description=description)
    Membership.objects.create(namespace=namespace, user=owner, role=Membership.Role.OWNER)
    AuditEvent.objects.create(kind=AuditEvent.Kind.NAMESPACE_CREATED, actor=owner, payload={"name": name})
    return namespace


@transaction.atomic
def membership_set(*, namespace: Namespace, user: User, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise HubError(f"role `{role}` is not one of {', '.join(Membership.Role.values)}", field="role")
    membership, _ = Membership.objects.update_or_create(namespace=namespace, user=user, defaults={"role": role})
    return membership


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_scopes(scopes: Iterable[str] | None) -> list[str]:
    chosen = sorted(set(default_token_scopes() if scopes is None else scopes))
    unknown = [s for s in chosen if s not in ApiToken.Scope.values]
    if unknown or not chosen:
        raise HubError(
            f"token scopes {', '.join(unknown) or '(none)'} not valid: pick one or more of "
            f"{', '.join(ApiToken.Scope.values)}",
            field="scopes",
        )
    return chosen


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    created_by_token: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the secret is returned once and only its hash is kept.

    ``scopes`` default to read, serve and write. A token minting another
    (``created_by_token``) needs the ``tokens`` scope, and gives at most its own scopes
    and lifetime: a child asking for no expiry gets its parent's.
    """
    chosen = _token_scopes(scopes)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise HubError("`expires_at` is in the past; give a future time (or none)", field="expires_at")
    if created_by_token is not None:
        # Locked, so a revocation running now either sees this child or makes us refuse.
        parent = ApiToken.objects.select_for_update().get(pk=created_by_token.pk)
        if parent.user_id != user.pk or parent.revoked_at is not None or not parent.allows(ApiToken.Scope.TOKENS):
            raise PermissionDenied(
                "this token may not create tokens: sign in, or use a token with the `tokens` scope",
                code="insufficient_scope",
            )
        extra = sorted(set(chosen) - set(parent.scopes))
        if extra:
            raise PermissionDenied(
                f"a token can only create tokens with scopes it has itself; it lacks {', '.join(extra)}",
                code="insufficient_scope",
                field="scopes",
            )
        if parent.expires_at is not None:
            if expires_at is None:
                expires_at = parent.expires_at
            elif expires_at > parent.expires_at:
                raise PermissionDenied(
                    f"a token can only create tokens that expire no later than itself "
                    f"({parent.expires_at.isoformat()})",
                    code="insufficient_scope",
                    field="expires_at",
                )
    secret = "ph_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name or "token",
        prefix=secret[:10],
        key_hash=token_hash(secret),
        scopes=chosen,
        expires_at=expires_at,
        created_by_token=created_by_token,
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> list[int]:
    """Revoke ``token`` and every token minted from it, at any depth. Returns their ids."""
    now = timezone.now()
    family: list[int] = []
    frontier = [token.pk]
    while frontier:
        # Locking each generation makes a concurrent mint from one of them wait, then refuse.
        rows = list(ApiToken.objects.select_for_update().filter(pk__in=frontier).values_list("pk", flat=True))
        family.extend(rows)
        frontier = list(
            ApiToken.objects.filter(created_by_token_id__in=rows).exclude(pk__in=family).values_list("pk", flat=True)
        )
    ApiToken.objects.filter(pk__in=family, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    return family
