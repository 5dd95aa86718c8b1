"""Create a user (if needed), their personal namespace and an API token; print the token."""

import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from hub import services
from hub.exceptions import HubError
from hub.models import ApiToken, Namespace

_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise CommandError(f"--expires-in `{text}`: give a positive number of seconds, or e.g. 30m, 12h, 90d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class Command(BaseCommand):
    help = "Create an API token for USERNAME (creating the user and namespace if missing)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label for the token")
        parser.add_argument("--superuser", action="store_true", help="make the user a superuser")
        parser.add_argument(
            "--scopes",
            default=",".join(ApiToken.Scope.values),
            help=f"comma-separated, of {', '.join(ApiToken.Scope.values)} (default: all of them)",
        )
        parser.add_argument("--expires-in", default=None, help="lifetime: seconds, or 30m, 12h, 90d (default: never)")

    def handle(self, *args, username: str, name: str, superuser: bool, scopes: str, expires_in: str | None, **options):
        expires_at = timezone.now() + _duration(expires_in) if expires_in else None
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        if superuser:
            user.is_staff = user.is_superuser = True
        user.save()
        if not Namespace.objects.filter(name__iexact=username).exists():
            services.namespace_create(name=username, owner=user)
        try:
            _, secret = services.api_token_create(
                user=user,
                name=name,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                expires_at=expires_at,
            )
        except HubError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(secret)
