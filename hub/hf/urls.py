"""URLs of the Hugging Face Hub protocol (``hub.hf.api``), at the site root as HF clients expect.

``api`` and ``admin`` are reserved namespace names, so ``/api/models/...`` and the repo
routes below never shadow each other or the rest of the site.

Base models are read through the same views. An id without a namespace is a base model's
name (no adapter has one); ``ns/name`` is the adapter with that id, and only when no
adapter has it (visible or not) the base model with that alias (its HF id, such as
``HuggingFaceTB/SmolLM2-135M-Instruct``). The base routes come after the adapter ones and
have one path segment fewer, so an adapter's URL never reaches them.
"""

from django.urls import path, re_path

from hub.urls import NAME

from . import api, commits, lfs, listing, repos

REPO = rf"(?P<namespace>{NAME})/(?P<name>{NAME})"
BASE = rf"(?P<name>{NAME})"  # a base model's name: HF ids without a namespace
REVISION = r"(?P<revision>[^/]+)"

app_name = "hf"
urlpatterns = [
    path("api/whoami-v2", api.whoami, name="whoami"),
    re_path(rf"^api/models/{REPO}$", api.model_info, name="model-info"),
    re_path(rf"^api/models/{REPO}/revision/{REVISION}$", api.model_info, name="model-info-revision"),
    re_path(rf"^api/models/{REPO}/tree/{REVISION}$", api.model_tree, name="model-tree"),
    re_path(rf"^api/models/{REPO}/tree/{REVISION}/(?P<path>.+)$", api.model_tree, name="model-tree-path"),
    re_path(rf"^{REPO}/resolve/{REVISION}/(?P<path>.+)$", api.resolve, name="resolve"),
    # --- base models, by name (an id without a namespace) or by alias (hub.hf.lookup.repo_find) ---
    re_path(rf"^api/models/{BASE}$", api.model_info, name="base-model-info"),
    re_path(rf"^api/models/{BASE}/revision/{REVISION}$", api.model_info, name="base-model-info-revision"),
    re_path(rf"^api/models/{BASE}/tree/{REVISION}$", api.model_tree, name="base-model-tree"),
    re_path(rf"^api/models/{BASE}/tree/{REVISION}/(?P<path>.+)$", api.model_tree, name="base-model-tree-path"),
    re_path(rf"^{BASE}/resolve/{REVISION}/(?P<path>.+)$", api.resolve, name="base-resolve"),
    # --- the write side and listings (hub.hf.repos, commits, lfs, listing) ---
    path("api/repos/create", repos.repo_create, name="repo-create"),
    path("api/repos/delete", repos.repo_delete, name="repo-delete"),
    path("api/validate-yaml", commits.validate_yaml, name="validate-yaml"),
    re_path(rf"^api/models/{REPO}/settings$", repos.repo_settings, name="repo-settings"),
    re_path(rf"^api/models/{REPO}/preupload/{REVISION}$", commits.preupload, name="preupload"),
    re_path(rf"^api/models/{REPO}/commit/{REVISION}$", commits.commit, name="commit"),
    re_path(rf"^{REPO}\.git/info/lfs/objects/batch$", lfs.lfs_batch, name="lfs-batch"),
    re_path(r"^api/hf-lfs/upload/(?P<grant>[^/]+)$", lfs.lfs_upload, name="lfs-upload"),
    re_path(rf"^api/hf-lfs/verify/{REPO}$", lfs.lfs_verify, name="lfs-verify"),
    path("api/models", listing.model_list, name="model-list"),
    re_path(rf"^api/models/{REPO}/refs$", listing.repo_refs, name="repo-refs"),
    re_path(rf"^api/models/{REPO}/commits/{REVISION}$", listing.repo_commits, name="repo-commits"),
    re_path(rf"^api/models/{REPO}/paths-info/{REVISION}$", listing.paths_info, name="paths-info"),
]
