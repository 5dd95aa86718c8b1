"""Take a replica out of the fleet for good (the engine itself is not stopped)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from serving.models import Replica


class Command(BaseCommand):
    help = (
        "Forget the replica at --url: no request goes there any more, and what only it held is "
        "loaded elsewhere on its next request. Stop the engine yourself."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="the replica URL (as the replicas API shows it)")

    def handle(self, *args, url: str, **options):
        replica = Replica.objects.filter(url=url.rstrip("/")).first()
        if replica is None:
            known = ", ".join(Replica.objects.order_by("url").values_list("url", flat=True)) or "none"
            raise CommandError(f"no replica has the URL {url} (registered: {known})")
        held = replica.placements.filter(deployment__isnull=False).count()
        replica.delete()
        self.stdout.write(f"serving: {url} is no longer a replica ({held} adapter(s) will load elsewhere on use)")
