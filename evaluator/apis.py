"""Thin DRF views of the evaluator: suites, jobs (watch, re-run, cancel), leaderboard."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import selectors as hub_selectors
from hub.apis import validated
from hub.pagination import CatalogPagination

from . import selectors, services
from .comparable import group_rows, short_task_hashes
from .serializers import JobDetailOut, JobOut, JobQueryIn, LeaderboardQueryIn, SuiteOut, SuiteUploadIn


class SuiteListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=SuiteOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(SuiteOut(selectors.suite_list(), many=True).data)

    @extend_schema(request={"multipart/form-data": SuiteUploadIn}, responses={201: SuiteOut, 200: SuiteOut})
    def post(self, request: Request) -> Response:
        """Register a suite (staff): a tar of its folder. A new version retires the older one."""
        user = hub_selectors.require_staff(user=request.user, action="registering a suite")
        data = validated(SuiteUploadIn, request.data)
        suite, created = services.suite_register_archive(fileobj=data["archive"], user=user)
        return Response(SuiteOut(suite).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class JobListApi(APIView):
    @extend_schema(parameters=[JobQueryIn], responses=JobOut(many=True))
    def get(self, request: Request) -> Response:
        query = validated(JobQueryIn, request.query_params)
        paginator = CatalogPagination()
        page = paginator.paginate_queryset(selectors.job_list(user=request.user, **query), request, view=self)
        return paginator.get_paginated_response(JobOut(page, many=True).data)


class JobDetailApi(APIView):
    @extend_schema(responses=JobDetailOut)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get(user=request.user, job_id=job_id)
        return Response(JobDetailOut(job).data)


class JobCancelApi(APIView):
    @extend_schema(request=None, responses=JobOut)
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get(user=request.user, job_id=job_id)
        hub_selectors.require_write(user=request.user, namespace=job.version.adapter.namespace)
        user = hub_selectors.require_authenticated(user=request.user, action="cancelling an evaluation")
        return Response(JobOut(services.evaluation_cancel(job=job, user=user)).data)


class JobRerunApi(APIView):
    @extend_schema(request=None, responses={202: JobOut})
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get(user=request.user, job_id=job_id)
        hub_selectors.require_write(user=request.user, namespace=job.version.adapter.namespace)
        user = hub_selectors.require_authenticated(user=request.user, action="re-running an evaluation")
        new = services.evaluation_rerun(job=job, user=user)
        return Response(JobOut(new).data, status=status.HTTP_202_ACCEPTED)


class VersionEvaluationsApi(APIView):
    @extend_schema(responses=JobDetailOut(many=True))
    def get(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        adapter = hub_selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        version = hub_selectors.version_resolve(adapter=adapter, ref=ref)
        return Response(JobDetailOut(selectors.version_jobs(version=version), many=True).data)


class SuiteDecisionApi(APIView):
    """RAG or fine-tuning on one suite: the arms side by side (:mod:`evaluator.decision`)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        from .decision import decision

        return Response(decision(user=request.user, suite=selectors.suite_get(slug=slug)))


class LeaderboardApi(APIView):
    @extend_schema(parameters=[LeaderboardQueryIn], responses={200: dict})
    def get(self, request: Request, slug: str):
        query = validated(LeaderboardQueryIn, request.query_params)
        suite = selectors.suite_get(slug=slug)
        rows = selectors.leaderboard(
            user=request.user,
            suite=suite,
            base_model=query["base_model"],
            accepted_only=query["accepted"],
            ordering=query["ordering"],
        )
        if query["export"] == "csv":
            columns = list(selectors.LEADERBOARD_COLUMNS) + sorted(
                {k for r in rows for k in r} - set(selectors.LEADERBOARD_COLUMNS)
            )
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({**row, "task_hashes": short_task_hashes(row["task_hashes"])} for row in rows)
            response = HttpResponse(buffer.getvalue(), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="leaderboard-{suite.slug}.csv"'
            return response
        # `rows` in order, ranked group first; `groups` say what each group's rows ran on
        groups = [{**group, "rows": len(group["rows"])} for group in group_rows(rows)]
        return Response({"suite": str(suite), "rows": rows, "groups": groups})
