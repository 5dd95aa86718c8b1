import logging

from django.apps import AppConfig


class EvaluatorConfig(AppConfig):
    name = "evaluator"

    def ready(self) -> None:
        from celery.signals import worker_ready

        worker_ready.connect(_requeue_orphans, weak=False, dispatch_uid="evaluator.requeue_orphans")


def _requeue_orphans(sender=None, **_) -> None:
    """A starting worker sends running jobs whose worker went silent back to the queue."""
    from django.conf import settings

    from .tasks import jobs_requeue_stale

    try:
        jobs_requeue_stale(older_than_seconds=settings.PEFTHUB_EVAL_STALE_AFTER)
    except Exception:  # never keep a worker from starting
        logging.getLogger(__name__).exception("could not requeue orphaned evaluation jobs")
