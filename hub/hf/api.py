"""The read side of the Hugging Face Hub HTTP protocol, so HF tooling reads adapters from the hub.

With ``HF_ENDPOINT=https://hub.example`` (or ``endpoint=``), ``huggingface_hub``'s
``snapshot_download``, ``hf_hub_download``, ``HfApi.model_info``, ``list_repo_tree`` and
``whoami``, and ``PeftModel.from_pretrained(base, "ns/name")`` work against the hub. A repo
is an adapter; a revision is anything ``version_resolve`` takes (``3``, ``v3``, an alias, a
content hash or prefix) plus ``main`` for ``latest``.

These are plain Django views, not DRF ones: they speak HF's protocol (its headers, its error
bodies), not the hub's REST API, so they are not in the OpenAPI schema. They share
:mod:`hub.hf.protocol` (the caller, HF-shaped errors), :mod:`hub.hf.lookup` (repo id and
revision to a commit) and :mod:`hub.hf.files` (trees, siblings, LFS pointers) with the
write side. What the client reads, and so what these views send (huggingface_hub 2.x):

- Commit: ``sha`` in model info and ``X-Repo-Commit`` on ``resolve`` are
  :func:`hub.selectors.version_commit_sha`, 40 hex digits (``REGEX_COMMIT_HASH``), which the
  client uses as the snapshot folder name and passes back as the revision of every file.
- ETag: the client names cache blobs after ``X-Linked-Etag`` (else ``ETag``), and for a
  ``local_dir`` file without metadata it hashes the file and compares when the etag is a
  sha256 (``REGEX_SHA256``). Our blobs are sha256-addressed, so every file is presented as
  an LFS file: ``ETag`` and ``X-Linked-Etag`` are its sha256, ``X-Linked-Size`` its size,
  and the tree/siblings ``oid``/``blobId`` is the git id of its LFS pointer (what a git repo
  holding that file in LFS would have).
- Redirect: ``resolve`` at a revision other than the commit answers 302 to the same file at
  the commit, with the headers above, as the Hub does for LFS files. The client's HEAD
  follows same-host redirects and downloads from the final URL, so its GET cannot get other
  bytes than the ETag it names the cache blob after, even if ``latest`` moves in between.
- Errors: ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) picks
  the exception; the JSON body's ``error`` string is added to its message. A private adapter
  without a member's token is a 404 ``RepoNotFound`` (as for a missing one), which the client
  raises as ``RepositoryNotFoundError``. A bad token is a 401 carrying the Hub's
  ``Invalid credentials in Authorization header`` message, which the client raises as is
  instead of turning it into "repository not found".
- No Xet: no ``X-Xet-*`` header and no ``xet-auth`` link, so the client downloads over plain
  HTTP even with ``hf_xet`` installed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import urlencode

from hub import selectors, services
from hub.exceptions import NotFound
from hub.models import Adapter, BaseModel
from hub.storage.ranges import blob_response, fetches_from_start

from .files import siblings, tree_entries, version_files
from .lookup import Commit, commit_find, hf_reverse, join_repo_id, repo_find
from .protocol import Caller, deprecation_warning, hf_error_from, hf_view, unauthorized

if TYPE_CHECKING:
    from hub.models import AdapterVersion, BaseModelRevision

TREE_PAGE_SIZE = 1000  # the Hub's own page size; PEFTHUB_HF_TREE_PAGE_SIZE overrides it


@hf_view
def model_info(
    request: HttpRequest, caller: Caller, name: str, namespace: str | None = None, revision: str | None = None
):
    """``GET /api/models/{repo}[/revision/{rev}]``: ``sha``, ``siblings`` and a card."""
    repo = repo_find(caller, namespace, name)
    if isinstance(repo, BaseModel):
        commit, row = commit_find(repo, revision or selectors.HF_DEFAULT_REVISION, join_repo_id(namespace, name))
        return JsonResponse(_base_model_info(repo, row, commit))
    if revision is None and repo.latest_version_id is None:
        version = None  # no version yet: the repo exists, with no commit
    else:
        version = selectors.version_resolve_hf(adapter=repo, revision=revision or "main")
    response = JsonResponse(adapter_model_info(repo, version))
    if version is not None:
        deprecation_warning(response, version)
    return response


def hf_date(moment: datetime) -> str:
    """The Hub's format, the only one the client parses: ``2024-11-16T00:27:02.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def base_model_hf_id(base: BaseModel) -> str:
    """The base model as HF tools name it: an alias that looks like an HF id, else its name
    (never the uploader's local path that ``adapter_config.json`` may carry)."""
    ids = sorted(a.alias for a in base.aliases.all() if _HF_ID.match(a.alias))
    return ids[0] if ids else base.name


def adapter_model_info(adapter: Adapter, version: AdapterVersion | None) -> dict:
    info: dict[str, Any] = {
        "id": adapter.full_name,
        "author": adapter.namespace.name,
        "sha": None,
        "lastModified": hf_date(adapter.updated_at),
        "createdAt": hf_date(adapter.created_at),
        "private": adapter.private,
        "gated": False,
        "disabled": False,
        "downloads": adapter.downloads,
        "likes": 0,
        "library_name": "peft",
        "tags": ["peft"],
        "siblings": [],
    }
    if version is None:
        return info
    base = base_model_hf_id(version.base_model)
    tags = ["peft", "safetensors", f"base_model:adapter:{base}", *(t.name for t in version.task_tags.all())]
    if version.license:
        tags.append(f"license:{version.license}")
    card = {"library_name": "peft", "base_model": base, "tags": [t.name for t in version.task_tags.all()]}
    if version.license:
        card["license"] = version.license
    info.update(
        sha=selectors.version_commit_sha(version),
        lastModified=hf_date(version.created_at),
        tags=tags,
        cardData=card,
        siblings=siblings(version_files(version)),
        usedStorage=version.size_bytes,
    )
    return info


def _base_model_info(base: BaseModel, row: BaseModelRevision, commit: Commit) -> dict:
    model_type = row.config.get("model_type")
    tags = ["transformers", "safetensors", "text-generation", *([model_type] if model_type else [])]
    card: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation"}
    if base.license:
        tags.append(f"license:{base.license}")
        card["license"] = base.license
    return {
        "id": commit.repo_id,
        "author": commit.repo_id.rpartition("/")[0] or None,
        "sha": commit.sha,
        "lastModified": hf_date(row.created_at),
        "createdAt": hf_date(base.created_at),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": tags,
        "config": {"architectures": [row.architecture], "model_type": model_type},
        "cardData": card,
        "siblings": siblings(commit.files),
        "usedStorage": sum(size for _, _, size in commit.files),
        # Not the Hub's: the hub's name for the base and the full revision (sha is its prefix).
        "pefthub": {"base_model": base.name, "revision": row.revision},
    }


@hf_view
def model_tree(
    request: HttpRequest, caller: Caller, name: str, revision: str, namespace: str | None = None, path: str = ""
):
    """``GET /api/models/{repo}/tree/{rev}[/{path}]``, paginated with ``Link: rel="next"``.

    The next page's link names the commit, not the revision, so pages never mix versions.
    """
    commit, _ = commit_find(repo_find(caller, namespace, name), revision, join_repo_id(namespace, name))
    recursive = request.GET.get("recursive", "").lower() in ("1", "true", "yes")
    under = path.strip("/")
    entries = tree_entries(commit.files, under, recursive)
    if entries is None:
        return hf_error_from(
            NotFound(f"{commit.label} has no folder `{under}`", code="entry_not_found"), {"X-Repo-Commit": commit.sha}
        )
    page_size = max(1, int(getattr(settings, "PEFTHUB_HF_TREE_PAGE_SIZE", TREE_PAGE_SIZE)))
    cursor = request.GET.get("cursor", "0")
    start = int(cursor) if cursor.isdigit() else 0
    response = JsonResponse(entries[start : start + page_size], safe=False)
    response["X-Repo-Commit"] = commit.sha
    if start + page_size < len(entries):
        url = hf_reverse("model-tree-path", commit.repo_id, revision=commit.sha, path=under) if under else None
        url = url or hf_reverse("model-tree", commit.repo_id, revision=commit.sha)
        query = {k: v for k, v in request.GET.dict().items() if k != "cursor"} | {"cursor": start + page_size}
        response["Link"] = f'<{request.build_absolute_uri(url)}?{urlencode(query)}>; rel="next"'
    return response


@hf_view
def resolve(request: HttpRequest, caller: Caller, name: str, revision: str, path: str, namespace: str | None = None):
    """``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: a file, whole or one byte range.

    At its commit (40 hex digits) the file itself; at any other revision a redirect there.
    """
    repo = repo_find(caller, namespace, name)
    if isinstance(repo, Adapter) and repo.latest_version_id is None and revision == selectors.HF_DEFAULT_REVISION:
        # A new repo's `main` exists and is empty, as on the Hub (ModelCard.load before a push).
        raise NotFound(f"{repo.full_name} has no version yet, so no `{path}`", code="entry_not_found")
    commit, _ = commit_find(repo, revision, join_repo_id(namespace, name))
    entry = next((f for f in commit.files if f[0] == path), None)
    if entry is None:
        missing = NotFound(
            f"{commit.label} has no file `{path}`; it has: " + ", ".join(f[0] for f in commit.files),
            code="entry_not_found",
        )
        # The client caches "no such file in this commit" under X-Repo-Commit.
        return hf_error_from(missing, {"X-Repo-Commit": commit.sha})

    _, sha256, size = entry
    etag = f'"{sha256}"'
    headers = {"X-Repo-Commit": commit.sha, "ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(size)}
    if commit.private:
        headers["Cache-Control"] = "private"
    if revision != commit.sha:
        # Like the Hub's redirect of an LFS file to its content: the client's HEAD follows it
        # (same host, so the token goes along) and its GET then names the commit, so a moving
        # alias cannot hand it other bytes than the ETag it caches them under.
        location = hf_reverse("resolve", commit.repo_id, revision=commit.sha, path=path)
        redirect = HttpResponse(status=302, headers={**headers, "Location": location})
        if commit.version is not None:
            deprecation_warning(redirect, commit.version)
        return redirect

    response = blob_response(request, sha256=sha256, size=size, path=path, headers=headers, chunks=commit.chunks(path))
    if commit.version is not None:
        deprecation_warning(response, commit.version)
        if path in services.DOWNLOAD_FILES and fetches_from_start(request, response):
            services.version_download_count(version=commit.version)
    return response


@hf_view
def whoami(request: HttpRequest, caller: Caller):
    """``GET /api/whoami-v2``: the token's user; namespaces shared with others are its orgs."""
    user = caller.user
    if not user.is_authenticated:
        return unauthorized("whoami needs a token: pass token=<pefthub token> or set HF_TOKEN")
    roles = {"owner": "admin", "writer": "write", "reader": "read"}
    orgs = [
        {"type": "org", "name": m.namespace.name, "fullname": m.namespace.name, "roleInOrg": roles[m.role]}
        for m in selectors.membership_list(user=user)
        if m.namespace.name.lower() != user.get_username().lower()
    ]
    if caller.token is not None:
        # Hub tokens are not scoped: they carry all their user's rights.
        access = {"displayName": caller.token.name, "role": "write"}
        auth = {"type": "access_token", "accessToken": access}
    else:
        auth = {"type": "session"}
    return JsonResponse(
        {
            "type": "user",
            "id": str(user.pk),
            "name": user.get_username(),
            "fullname": user.get_full_name() or user.get_username(),
            "email": user.email or None,
            "isPro": False,
            "canPay": False,
            "orgs": orgs,
            "auth": auth,
        }
    )
