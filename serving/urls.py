"""Serving's routes, all mounted at the site root by one line in config/urls.py:
the OpenAI gateway (/v1/...), /metrics, and the REST endpoints under /api/v1/."""

from django.urls import path, re_path

from hub.urls import ADAPTER

from . import apis, gateway, views

VERSION = rf"^api/v1/{ADAPTER}/versions/(?P<ref>[A-Za-z0-9._-]+)"

app_name = "serving"
urlpatterns = [
    path("v1/models", gateway.ModelListGateway.as_view(), name="v1-models"),
    path("v1/models/<path:model>", gateway.ModelDetailGateway.as_view(), name="v1-model"),
    path("v1/completions", gateway.CompletionGateway.as_view(), name="v1-completions"),
    path("v1/chat/completions", gateway.ChatCompletionGateway.as_view(), name="v1-chat-completions"),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
    re_path(rf"{VERSION}/deploy/$", apis.DeployApi.as_view(), name="version-deploy"),
    re_path(rf"{VERSION}/undeploy/$", apis.UndeployApi.as_view(), name="version-undeploy"),
    re_path(rf"{VERSION}/deployment/$", apis.DeploymentApi.as_view(), name="version-deployment"),
    path("api/v1/serving/usage/", apis.UsageListApi.as_view(), name="usage-list"),
    path("api/v1/serving/replicas/", apis.ReplicaListApi.as_view(), name="replica-list"),
]
