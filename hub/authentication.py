"""Bearer-token authentication with the hub's own hashed API tokens.

Accepts ``Authorization: Bearer <token>`` (what the HF and OpenAI clients send) and
``Authorization: Token <token>``.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken
from .services import token_hash

_TOUCH_EVERY = timedelta(minutes=1)


def user_for_token(secret: str):
    """``(user, token)`` for a live token (not revoked, not expired, active user), else ``(None, None)``.

    What the token may do is its ``scopes``: see :mod:`hub.permissions`.
    """
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=token_hash(secret), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if token is None or not token.user.is_active:
        return None, None
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
        # One write a minute at most: knowing a token is in use matters, its exact time not.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "malformed Authorization header: send `Authorization: Bearer <token>`"
            )
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("the token has characters no token has") from None
        user, token = user_for_token(secret)
        if user is None:
            raise exceptions.AuthenticationFailed(
                "invalid or revoked token, or one that expired: create a new one with "
                "`python manage.py hub_token_create <user>` or on your settings page"
            )
        return user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="pefthub"'
