"""The evaluation queue: a list, a small live-progress partial that htmx polls, cancel and re-run."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from evaluator import selectors as eval_selectors
from evaluator import services as eval_services
from hub import selectors as hub_selectors
from hub.exceptions import HubError

from .. import selectors
from ..forms import QueueForm
from .common import hub_errors, query_without, redirect_back

QUEUE_PAGE_SIZE = 25


def queue(request: HttpRequest) -> HttpResponse:
    form = QueueForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    jobs = selectors.queue(user=request.user, status=data.get("status", ""), adapter=data.get("adapter", ""))
    page = Paginator(jobs, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    writable = selectors.writable_namespace_ids(user=request.user)
    for job in page:
        job.can_act = writable is None or job.version.adapter.namespace_id in writable
    return render(
        request,
        "web/queue.html",
        {
            "form": form,
            "page": page,
            "counts": selectors.queue_counts(user=request.user),
            "statuses": eval_selectors.EvaluationJob.Status.choices,
            "status": data.get("status", ""),
            "query": query_without(request, "page"),
        },
    )


@hub_errors
def job_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    """The status cell of one job; it keeps polling itself while the job is live."""
    job = eval_selectors.job_get(user=request.user, job_id=job_id)
    return render(request, "web/partials/job_progress.html", {"job": job})


def _act(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    """Cancel or re-run; an invisible job is a 404, someone else's a 403, a conflict a message."""
    job = eval_selectors.job_get(user=request.user, job_id=job_id)
    hub_selectors.require_write(user=request.user, namespace=job.version.adapter.namespace)
    try:
        if action == "cancel":
            eval_services.evaluation_cancel(job=job, user=request.user)
            messages.success(request, f"Cancelled evaluation {job.pk} of {job.version} on {job.suite}.")
        else:
            new = eval_services.evaluation_rerun(job=job, user=request.user)
            messages.success(request, f"Queued evaluation {new.pk}: {job.version} on {job.suite} again.")
    except HubError as exc:
        messages.error(request, exc.message)
    return redirect_back(request, reverse("web:queue"))


@login_required
@require_POST
@hub_errors
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    return _act(request, job_id, "cancel")


@login_required
@require_POST
@hub_errors
def job_rerun(request: HttpRequest, job_id: int) -> HttpResponse:
    return _act(request, job_id, "rerun")
