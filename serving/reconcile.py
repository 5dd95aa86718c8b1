"""Serving's reconciler: accepted versions whose ``version.accepted`` event never arrived.

Registered in ``PEFTHUB_RECONCILERS``. An accepted, not deprecated version with no
deployment at all is made live; one its owner undeployed has a deployment row and is left
off, as are versions that cannot be served (the reason is logged, not retried as an error).
"""

from __future__ import annotations

import logging

from hub.events import VERSION_ACCEPTED, task_names
from hub.models import AdapterVersion

from .exceptions import ServingError
from .models import Deployment

log = logging.getLogger(__name__)

SUBSCRIBER = "serving.version_accepted"


def versions_accepted_not_live():
    # No limit: the versions that cannot be served stay in this set, and must not starve the rest.
    return AdapterVersion.objects.filter(
        status=AdapterVersion.Status.ACCEPTED, deprecated_at__isnull=True, deployment__isnull=True
    ).order_by("created_at")


def deployments_reconcile() -> list[int]:
    """Make the accepted versions live that are not; returns the ids of those it deployed.

    Does nothing where serving does not subscribe to ``version.accepted``.
    """
    from .services import deployment_activate

    if SUBSCRIBER not in task_names(VERSION_ACCEPTED):
        return []
    fixed = []
    for version in versions_accepted_not_live():
        try:
            deployment_activate(version=version, reason=Deployment.Reason.ACCEPTED)
        except ServingError as exc:  # a fact about the version: it stays off
            log.info("accepted version %s is not served: %s", version, exc.message)
            continue
        fixed.append(version.pk)
    return fixed
