from django.urls import path, re_path

from .views import account, catalog, evaluations, playground

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
ADAPTER = rf"adapters/(?P<namespace>{NAME})/(?P<name>{NAME})"
REF = r"(?P<ref>[A-Za-z0-9._-]+)"

app_name = "web"
urlpatterns = [
    path("", catalog.home, name="home"),
    path("adapters/", catalog.catalog, name="catalog"),
    path("adapters/new/", account.adapter_create, name="adapter-create"),
    re_path(rf"^{ADAPTER}/$", catalog.adapter_detail, name="adapter"),
    re_path(rf"^{ADAPTER}/v/{REF}/$", catalog.adapter_detail, name="adapter-version"),
    re_path(rf"^{ADAPTER}/v/{REF}/evaluations/(?P<job_id>[0-9]+)/samples/$", catalog.samples, name="samples"),
    path("leaderboard/", catalog.leaderboard, name="leaderboard"),
    re_path(rf"^suites/(?P<slug>{NAME})/decision/$", catalog.decision, name="decision"),
    path("evaluations/", evaluations.queue, name="queue"),
    path("evaluations/<int:job_id>/progress/", evaluations.job_progress, name="job-progress"),
    path("evaluations/<int:job_id>/cancel/", evaluations.job_cancel, name="job-cancel"),
    path("evaluations/<int:job_id>/rerun/", evaluations.job_rerun, name="job-rerun"),
    path("playground/", playground.playground, name="playground"),
    path("playground/retrieve/", playground.retrieve, name="retrieve"),
    path("settings/tokens/", account.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", account.token_revoke, name="token-revoke"),
    path("namespaces/new/", account.namespace_create, name="namespace-create"),
]
