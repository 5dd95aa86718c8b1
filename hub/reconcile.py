"""Reconcilers: periodic checks that repair what a lost event would have done.

The hub cannot import the apps that consume its events, so they register theirs by
dotted path in ``PEFTHUB_RECONCILERS``: each is a function without arguments that fixes
what it finds and returns the ids it fixed. ``hub.reconcile`` runs them every
``PEFTHUB_RECONCILE_INTERVAL`` seconds; ``manage.py hub_events_replay`` on demand.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


def reconcilers_run() -> dict[str, list]:
    """Run every registered reconciler; one failing does not keep the others from running."""
    results: dict[str, list] = {}
    for path in settings.PEFTHUB_RECONCILERS:
        try:
            fixed = list(import_string(path)())
        except Exception:
            log.exception("reconciler %s failed", path)
            continue
        if fixed:
            log.warning("reconciler %s repaired %s", path, fixed)
        results[path] = fixed
    return results
