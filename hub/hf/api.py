"""The read side of the Hugging Face Hub HTTP protocol, so HF tooling reads adapters from the hub.

With ``HF_ENDPOINT=https://hub.example`` (or ``endpoint=``), ``huggingface_hub``'s
``snapshot_download``, ``hf_hub_download``, ``HfApi.model_info``, ``list_repo_tree`` and
``whoami``, and ``PeftModel.from_pretrained(base, "ns/name")`` work against the hub. A repo
is an adapter; a revision is anything ``version_resolve`` takes (``3``, ``v3``, an alias, a
content hash or prefix) plus ``main`` for ``latest``.

These are plain Django views, not DRF ones: they speak HF's protocol (its headers, its error
bodies), not the hub's REST API, so they are not in the OpenAPI schema. What the client
reads, and so what these views send (huggingface_hub 2.x):

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

import hashlib
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt

from hub import selectors, services
from hub.api_errors import _header_safe
from hub.authentication import user_for_token
from hub.exceptions import HubError, NotFound
from hub.models import Adapter, BaseModel
from hub.storage.blobstore import read_range
from hub.storage.ranges import blob_response, fetches_from_start

if TYPE_CHECKING:
    from hub.models import AdapterVersion, ApiToken, BaseModelRevision

TREE_PAGE_SIZE = 1000  # the Hub's own page size; PEFTHUB_HF_TREE_PAGE_SIZE overrides it
# The Hub's exact words: the client raises a 401 that carries them as a token problem, not
# as "repository not found" (utils/_http.py, hf_raise_for_status).
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_ERROR_CODES = {"revision_not_found": "RevisionNotFound", "entry_not_found": "EntryNotFound"}


# --- requests and errors ---------------------------------------------------------------------
@dataclass
class Caller:
    user: Any
    token: ApiToken | None


class _BadToken(Exception):
    pass


def _caller(request: HttpRequest) -> Caller:
    """The token's user (``Authorization: Bearer <hub token>``), else the session's user."""
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() not in ("bearer", "token"):
        return Caller(request.user, None)
    user, token = user_for_token(secret.strip()) if secret.strip() else (None, None)
    if user is None or token is None or not token.allows("read"):  # every HF view reads
        raise _BadToken
    return Caller(user, token)


def _error(status: int, message: str, *, code: str | None = None, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status, headers=headers)
    response["X-Error-Message"] = _header_safe(message)
    if code:
        response["X-Error-Code"] = code
    return response


def _hub_error(exc: HubError, headers: dict | None = None) -> JsonResponse:
    code = _ERROR_CODES.get(exc.code, "RepoNotFound") if exc.status_code == 404 else None
    return _error(exc.status_code, exc.message, code=code, headers={**exc.headers, **(headers or {})})


def _unauthorized(message: str) -> JsonResponse:
    response = _error(401, message)
    response["X-Error-Message"] = INVALID_CREDENTIALS
    response["WWW-Authenticate"] = 'Bearer realm="pefthub"'
    return response


def hf_view(view):
    """GET and HEAD only; authenticate; turn hub errors into HF-shaped ones."""

    # Exempt so that other methods get this 405, not the CSRF page: nothing here writes.
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return _error(405, f"{request.method} is not supported here", headers={"Allow": "GET, HEAD"})
        try:
            caller = _caller(request)
        except _BadToken:
            return _unauthorized(
                "invalid or revoked token, or one that expired or lacks the `read` scope: HF clients send "
                "HF_TOKEN or the token of `hf auth login`; "
                "pass a pefthub token (token=... or HF_TOKEN) or none (token=False)"
            )
        try:
            return view(request, caller, **kwargs)
        except HubError as exc:
            return _hub_error(exc)

    return wrapper


def _deprecation_warning(response: HttpResponseBase, version: AdapterVersion) -> None:
    """The client logs ``X-HF-Warning`` (``topic; message``) once per topic."""
    if version.deprecated_at is not None:
        reason = f": {version.deprecation_reason}" if version.deprecation_reason else ""
        response["X-HF-Warning"] = _header_safe(
            f"pefthub-deprecated-{version.pk}; {version} is deprecated{reason}".replace("\n", " ")
        )


# --- files as the Hub describes them ---------------------------------------------------------
def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _files(version: AdapterVersion) -> list[tuple[str, str, int]]:
    return sorted((f.path, f.blob_id, f.blob.size) for f in version.files.all())


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def tree_entries(files: list[tuple[str, str, int]], under: str, recursive: bool) -> list[dict] | None:
    """The tree listing under folder ``under`` ("" for the root), or None if no such folder.

    ``files`` are ``(path, sha256, size)``. Folder ids are stable hashes of their content,
    not git tree ids (nothing in the client reads them).
    """
    folders: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []
    for path, sha256, size in files:
        pointer = lfs_pointer(sha256, size)
        oid = git_blob_id(pointer)
        for parent in _parents(path):
            folders.setdefault(parent, []).append(oid)
        lfs = {"oid": sha256, "size": size, "pointerSize": len(pointer)}
        rows.append({"type": "file", "oid": oid, "size": size, "path": path, "lfs": lfs})
    for folder, oids in folders.items():
        oid = hashlib.sha1("\n".join(sorted(oids)).encode(), usedforsecurity=False).hexdigest()
        rows.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
    if under and under not in folders:
        return None
    prefix = f"{under}/" if under else ""
    return sorted(
        (
            row
            for row in rows
            if row["path"].startswith(prefix) and (recursive or "/" not in row["path"][len(prefix) :])
        ),
        key=lambda row: row["path"],
    )


def _siblings(files: list[tuple[str, str, int]]) -> list[dict]:
    siblings = []
    for path, sha256, size in files:
        pointer = lfs_pointer(sha256, size)
        lfs = {"size": size, "sha256": sha256, "pointerSize": len(pointer)}
        siblings.append({"rfilename": path, "size": size, "blobId": git_blob_id(pointer), "lfs": lfs})
    return siblings


# --- repos: adapters, and base models --------------------------------------------------------
@dataclass
class Commit:
    """One commit as these views serve it: an adapter version, or a base model revision."""

    repo_id: str  # as the client names it, and routes back here
    sha: str  # 40 hex digits
    files: list[tuple[str, str, int]]  # (path, sha256, size), sorted
    private: bool
    label: str  # in messages
    version: AdapterVersion | None = None
    folder: Path | None = None  # a base revision's files live there, not in the blob store

    def chunks(self, path: str) -> Callable[[int, int], Generator[bytes, None, None]] | None:
        if self.folder is None:
            return None  # the blob store
        file = self.folder / path  # path is one of self.files: no way out of the folder

        def read(start: int, length: int) -> Generator[bytes, None, None]:
            with open(file, "rb") as handle:
                yield from read_range(handle, start, length)

        return read


def _repo(caller: Caller, namespace: str | None, name: str) -> Adapter | BaseModel:
    """What a repo id names: the adapter ``namespace/name``, else a base model.

    A base model answers to its name (``smollm2-135m-instruct``, an id without a namespace,
    which no adapter can have) and to its aliases, such as its HF id
    (``HuggingFaceTB/SmolLM2-135M-Instruct``). An adapter id wins over an alias: ``ns/name``
    is a base model only while no adapter has that id, visible to the caller or not, so
    creating such an adapter never changes what a private one's id resolves to for outsiders.
    """
    if namespace is None:
        base = selectors.base_model_find(name)
        if base is None:
            raise NotFound(f"no base model `{name}` (adapters are named `namespace/name`)")
        return base
    try:
        return selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    except NotFound:
        base = None
        if not selectors.adapter_exists(namespace=namespace, name=name):
            base = selectors.base_model_find(f"{namespace}/{name}")
        if base is None:
            raise
        return base


def _commit(repo: Adapter | BaseModel, revision: str, repo_id: str) -> tuple[Commit, Any]:
    """The commit a revision names, and the version or base revision row behind it."""
    if isinstance(repo, BaseModel):
        row = selectors.base_revision_resolve_hf(base=repo, revision=revision)
        files = services.base_revision_files(row=row)
        commit = Commit(
            repo_id=repo_id,
            sha=selectors.base_revision_commit_sha(row),
            files=sorted((path, f["sha256"], f["size"]) for path, f in files.items()),
            private=False,  # base models are public: anyone may read what adapters run on
            label=f"base model `{repo.name}` revision {row.revision[:12]}",
            folder=Path(row.local_path),
        )
        return commit, row
    version = selectors.version_resolve_hf(adapter=repo, revision=revision)
    commit = Commit(
        repo_id=repo.full_name,
        sha=selectors.version_commit_sha(version),
        files=_files(version),
        private=repo.private,
        label=str(version),
        version=version,
    )
    return commit, version


def _hf_reverse(view: str, repo_id: str, **kwargs: str) -> str:
    """The URL of ``view`` for a repo id: ``ns/name`` routes, or the base model ones."""
    namespace, _, name = repo_id.rpartition("/")
    if namespace:
        return reverse(f"hf:{view}", kwargs={"namespace": namespace, "name": name, **kwargs})
    return reverse(f"hf:base-{view}", kwargs={"name": name, **kwargs})


def _repo_id(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


# --- views -----------------------------------------------------------------------------------
@hf_view
def model_info(
    request: HttpRequest, caller: Caller, name: str, namespace: str | None = None, revision: str | None = None
):
    """``GET /api/models/{repo}[/revision/{rev}]``: ``sha``, ``siblings`` and a card."""
    repo = _repo(caller, namespace, name)
    if isinstance(repo, BaseModel):
        commit, row = _commit(repo, revision or selectors.HF_DEFAULT_REVISION, _repo_id(namespace, name))
        return JsonResponse(_base_model_info(repo, row, commit))
    if revision is None and repo.latest_version_id is None:
        version = None  # no version yet: the repo exists, with no commit
    else:
        version = selectors.version_resolve_hf(adapter=repo, revision=revision or "main")
    response = JsonResponse(_model_info(repo, version))
    if version is not None:
        _deprecation_warning(response, version)
    return response


def _hf_date(moment: datetime) -> str:
    """The Hub's format, the only one the client parses: ``2024-11-16T00:27:02.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def base_model_hf_id(base: BaseModel) -> str:
    """The base model as HF tools name it: an alias that looks like an HF id, else its name
    (never the uploader's local path that ``adapter_config.json`` may carry)."""
    ids = sorted(a.alias for a in base.aliases.all() if _HF_ID.match(a.alias))
    return ids[0] if ids else base.name


def _model_info(adapter: Adapter, version: AdapterVersion | None) -> dict:
    info: dict[str, Any] = {
        "id": adapter.full_name,
        "author": adapter.namespace.name,
        "sha": None,
        "lastModified": _hf_date(adapter.updated_at),
        "createdAt": _hf_date(adapter.created_at),
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
        lastModified=_hf_date(version.created_at),
        tags=tags,
        cardData=card,
        siblings=_siblings(_files(version)),
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
        "lastModified": _hf_date(row.created_at),
        "createdAt": _hf_date(base.created_at),
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
        "siblings": _siblings(commit.files),
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
    commit, _ = _commit(_repo(caller, namespace, name), revision, _repo_id(namespace, name))
    recursive = request.GET.get("recursive", "").lower() in ("1", "true", "yes")
    under = path.strip("/")
    entries = tree_entries(commit.files, under, recursive)
    if entries is None:
        return _hub_error(
            NotFound(f"{commit.label} has no folder `{under}`", code="entry_not_found"), {"X-Repo-Commit": commit.sha}
        )
    page_size = max(1, int(getattr(settings, "PEFTHUB_HF_TREE_PAGE_SIZE", TREE_PAGE_SIZE)))
    cursor = request.GET.get("cursor", "0")
    start = int(cursor) if cursor.isdigit() else 0
    response = JsonResponse(entries[start : start + page_size], safe=False)
    response["X-Repo-Commit"] = commit.sha
    if start + page_size < len(entries):
        url = _hf_reverse("model-tree-path", commit.repo_id, revision=commit.sha, path=under) if under else None
        url = url or _hf_reverse("model-tree", commit.repo_id, revision=commit.sha)
        query = {k: v for k, v in request.GET.dict().items() if k != "cursor"} | {"cursor": start + page_size}
        response["Link"] = f'<{request.build_absolute_uri(url)}?{urlencode(query)}>; rel="next"'
    return response


@hf_view
def resolve(request: HttpRequest, caller: Caller, name: str, revision: str, path: str, namespace: str | None = None):
    """``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: a file, whole or one byte range.

    At its commit (40 hex digits) the file itself; at any other revision a redirect there.
    """
    repo = _repo(caller, namespace, name)
    if isinstance(repo, Adapter) and repo.latest_version_id is None and revision == selectors.HF_DEFAULT_REVISION:
        # A new repo's `main` exists and is empty, as on the Hub (ModelCard.load before a push).
        raise NotFound(f"{repo.full_name} has no version yet, so no `{path}`", code="entry_not_found")
    commit, _ = _commit(repo, revision, _repo_id(namespace, name))
    entry = next((f for f in commit.files if f[0] == path), None)
    if entry is None:
        missing = NotFound(
            f"{commit.label} has no file `{path}`; it has: " + ", ".join(f[0] for f in commit.files),
            code="entry_not_found",
        )
        # The client caches "no such file in this commit" under X-Repo-Commit.
        return _hub_error(missing, {"X-Repo-Commit": commit.sha})

    _, sha256, size = entry
    etag = f'"{sha256}"'
    headers = {"X-Repo-Commit": commit.sha, "ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(size)}
    if commit.private:
        headers["Cache-Control"] = "private"
    if revision != commit.sha:
        # Like the Hub's redirect of an LFS file to its content: the client's HEAD follows it
        # (same host, so the token goes along) and its GET then names the commit, so a moving
        # alias cannot hand it other bytes than the ETag it caches them under.
        location = _hf_reverse("resolve", commit.repo_id, revision=commit.sha, path=path)
        redirect = HttpResponse(status=302, headers={**headers, "Location": location})
        if commit.version is not None:
            _deprecation_warning(redirect, commit.version)
        return redirect

    response = blob_response(request, sha256=sha256, size=size, path=path, headers=headers, chunks=commit.chunks(path))
    if commit.version is not None:
        _deprecation_warning(response, commit.version)
        if path in services.DOWNLOAD_FILES and fetches_from_start(request, response):
            services.version_download_count(version=commit.version)
    return response


@hf_view
def whoami(request: HttpRequest, caller: Caller):
    """``GET /api/whoami-v2``: the token's user; namespaces shared with others are its orgs."""
    user = caller.user
    if not user.is_authenticated:
        return _unauthorized("whoami needs a token: pass token=<pefthub token> or set HF_TOKEN")
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
