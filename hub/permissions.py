"""What a token may do: DRF permissions over :attr:`hub.models.ApiToken.scopes`.

A request signed in with a session may do whatever its user may; one made with a token
is limited to the token's scopes. ``read`` covers safe methods and ``write`` the others
(:class:`TokenScope`, the default for every DRF view), ``serve`` the serving gateway
(:class:`ServeScope`), and ``tokens`` creating and revoking tokens (:class:`ManagesTokens`).
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .exceptions import HubError, PermissionDenied
from .models import ApiToken


def request_token(request) -> ApiToken | None:
    """The token a request was authenticated with; None for a session or anonymous one."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None


def require_scope(request, scope: str) -> None:
    """Refuse (403) a token request whose token lacks ``scope``; sessions and anonymous pass."""
    token = request_token(request)
    if token is not None and not token.allows(scope):
        raise PermissionDenied(
            f"token `{token.name}` ({token.prefix}…) has scopes {', '.join(token.scopes)}, and this needs "
            f"`{scope}`: create a token with that scope",
            code="insufficient_scope",
        )


class TokenScope(BasePermission):
    """``read`` for safe methods, ``write`` for the others (a view may set ``required_scope``)."""

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None) or (
            ApiToken.Scope.READ if request.method in SAFE_METHODS else ApiToken.Scope.WRITE
        )
        require_scope(request, scope)
        return True


class ServeScope(BasePermission):
    """For the serving gateway: a token needs ``serve``."""

    def has_permission(self, request, view) -> bool:
        require_scope(request, ApiToken.Scope.SERVE)
        return True


class ManagesTokens(BasePermission):
    """Listing tokens needs ``read``; creating and revoking them a session or the ``tokens`` scope."""

    def has_permission(self, request, view) -> bool:
        if not request.user.is_authenticated:
            raise HubError(
                "managing tokens needs a signed-in user or a token", status_code=401, code="not_authenticated"
            )
        if request.method in SAFE_METHODS:
            require_scope(request, ApiToken.Scope.READ)
        else:
            require_scope(request, ApiToken.Scope.TOKENS)
        return True
