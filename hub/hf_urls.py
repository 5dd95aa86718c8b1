"""URLs of the Hugging Face Hub protocol (``hub.hfapi``), at the site root as HF clients expect.

``api`` and ``admin`` are reserved namespace names, so ``/api/models/...`` and the repo
routes below never shadow each other or the rest of the site.
"""

from django.urls import path, re_path

from . import hfapi
from .urls import NAME

REPO = rf"(?P<namespace>{NAME})/(?P<name>{NAME})"
REVISION = r"(?P<revision>[^/]+)"

app_name = "hf"
urlpatterns = [
    path("api/whoami-v2", hfapi.whoami, name="whoami"),
    re_path(rf"^api/models/{REPO}$", hfapi.model_info, name="model-info"),
    re_path(rf"^api/models/{REPO}/revision/{REVISION}$", hfapi.model_info, name="model-info-revision"),
    re_path(rf"^api/models/{REPO}/tree/{REVISION}$", hfapi.model_tree, name="model-tree"),
    re_path(rf"^api/models/{REPO}/tree/{REVISION}/(?P<path>.+)$", hfapi.model_tree, name="model-tree-path"),
    re_path(rf"^{REPO}/resolve/{REVISION}/(?P<path>.+)$", hfapi.resolve, name="resolve"),
]
