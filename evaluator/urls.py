from django.urls import path, re_path

from . import apis

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"

app_name = "evaluator"
urlpatterns = [
    path("suites/", apis.SuiteListApi.as_view(), name="suite-list"),
    re_path(rf"^suites/(?P<slug>{NAME})/decision/$", apis.SuiteDecisionApi.as_view(), name="suite-decision"),
    path("evaluations/", apis.JobListApi.as_view(), name="job-list"),
    path("evaluations/<int:job_id>/", apis.JobDetailApi.as_view(), name="job-detail"),
    path("evaluations/<int:job_id>/cancel/", apis.JobCancelApi.as_view(), name="job-cancel"),
    path("evaluations/<int:job_id>/rerun/", apis.JobRerunApi.as_view(), name="job-rerun"),
    re_path(
        rf"^adapters/(?P<namespace>{NAME})/(?P<name>{NAME})/versions/(?P<ref>[A-Za-z0-9._-]+)/evaluations/$",
        apis.VersionEvaluationsApi.as_view(),
        name="version-evaluations",
    ),
    re_path(rf"^leaderboard/(?P<slug>{NAME})/$", apis.LeaderboardApi.as_view(), name="leaderboard"),
]
