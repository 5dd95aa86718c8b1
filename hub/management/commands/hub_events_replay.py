"""Send the hub's pending events now, and run the reconcilers (what the periodic tasks do)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hub.outbox import outbox_deliver
from hub.reconcile import reconcilers_run

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str):
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        return timezone.now() - timedelta(**{UNITS[match[2]]: int(match[1])})
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--all-since `{value}`: give a duration like 30m, 6h or 2d, or an ISO date-time")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = (
        "Send every event the broker has not taken yet, then run the reconcilers that request "
        "missing evaluations and serve accepted versions that are not live."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all-since",
            metavar="WHEN",
            help="also send again events already sent since WHEN (30m, 6h, 2d or an ISO date-time)",
        )
        parser.add_argument("--no-reconcile", action="store_true", help="only send the events")

    def handle(self, *args, all_since: str | None, no_reconcile: bool, **options):
        since = parse_since(all_since) if all_since else None
        report = outbox_deliver(since=since, limit=None)
        sent, failed = report.sent, report.failed
        self.stdout.write(f"sent {sent} event(s)" + (f", {failed} refused by the broker" if failed else ""))
        if not no_reconcile:
            for name, fixed in reconcilers_run().items():
                self.stdout.write(f"{name}: repaired {len(fixed)} ({', '.join(map(str, fixed)) or 'nothing to do'})")
        if failed:
            raise CommandError(
                f"{failed} event(s) could not be sent: is the broker (CELERY_BROKER_URL) running? "
                "They stay pending; run this again, or let the worker's periodic task send them."
            )
