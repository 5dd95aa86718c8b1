"""Create a user (if needed), their personal namespace and an API token; print the token."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from hub import services
from hub.models import Namespace


class Command(BaseCommand):
    help = "Create an API token for USERNAME (creating the user and namespace if missing)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label for the token")
        parser.add_argument("--superuser", action="store_true", help="make the user a superuser")

    def handle(self, *args, username: str, name: str, superuser: bool, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        if superuser:
            user.is_staff = user.is_superuser = True
        user.save()
        if not Namespace.objects.filter(name__iexact=username).exists():
            services.namespace_create(name=username, owner=user)
        _, secret = services.api_token_create(user=user, name=name)
        self.stdout.write(secret)
