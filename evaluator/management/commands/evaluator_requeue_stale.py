"""Send running evaluation jobs whose worker went silent back to the queue."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from evaluator.tasks import jobs_requeue_stale


class Command(BaseCommand):
    help = "Requeue running evaluation jobs with no progress for --older-than seconds (workers do this at start)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=settings.PEFTHUB_EVAL_STALE_AFTER,
            help="seconds without progress (default PEFTHUB_EVAL_STALE_AFTER)",
        )

    def handle(self, *args, **options):
        ids = jobs_requeue_stale(older_than_seconds=options["older_than"])
        self.stdout.write(f"requeued {len(ids)} job(s){': ' + ', '.join(map(str, ids)) if ids else ''}")
