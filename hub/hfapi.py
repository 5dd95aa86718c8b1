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
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.csrf import csrf_exempt

from . import selectors
from .api_errors import _header_safe
from .authentication import user_for_token
from .blobstore import blob_iter
from .exceptions import HubError, NotFound

if TYPE_CHECKING:
    from .models import Adapter, AdapterVersion, ApiToken

TREE_PAGE_SIZE = 1000  # the Hub's own page size; PEFTHUB_HF_TREE_PAGE_SIZE overrides it
# The Hub's exact words: the client raises a 401 that carries them as a token problem, not
# as "repository not found" (utils/_http.py, hf_raise_for_status).
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_ERROR_CODES = {"revision_not_found": "RevisionNotFound", "entry_not_found": "EntryNotFound"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_UNSATISFIABLE = "unsatisfiable"


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
    if user is None:
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
    return _error(exc.status_code, exc.message, code=code, headers=headers)


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
                "invalid or revoked token: HF clients send HF_TOKEN or the token of `hf auth login`; "
                "pass a pefthub token (token=... or HF_TOKEN) or none (token=False)"
            )
        try:
            return view(request, caller, **kwargs)
        except HubError as exc:
            return _hub_error(exc)

    return wrapper


def _deprecation_warning(response: HttpResponse, version: AdapterVersion) -> None:
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
    rows = []
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


def _siblings(version: AdapterVersion) -> list[dict]:
    siblings = []
    for path, sha256, size in _files(version):
        pointer = lfs_pointer(sha256, size)
        lfs = {"size": size, "sha256": sha256, "pointerSize": len(pointer)}
        siblings.append({"rfilename": path, "size": size, "blobId": git_blob_id(pointer), "lfs": lfs})
    return siblings


# --- views -----------------------------------------------------------------------------------
@hf_view
def model_info(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str | None = None):
    """``GET /api/models/{ns}/{name}[/revision/{rev}]``: ``sha``, ``siblings`` and a card."""
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    if revision is None and adapter.latest_version_id is None:
        version = None  # no version yet: the repo exists, with no commit
    else:
        version = selectors.version_resolve_hf(adapter=adapter, revision=revision or "main")
    response = JsonResponse(_model_info(adapter, version))
    if version is not None:
        _deprecation_warning(response, version)
    return response


def _hf_date(moment: datetime) -> str:
    """The Hub's format, the only one the client parses: ``2024-11-16T00:27:02.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
        "downloads": 0,
        "likes": 0,
        "library_name": "peft",
        "tags": ["peft"],
        "siblings": [],
    }
    if version is None:
        return info
    base = version.config.get("base_model_name_or_path") or version.base_model.name
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
        siblings=_siblings(version),
        usedStorage=version.size_bytes,
    )
    return info


@hf_view
def model_tree(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str, path: str = ""):
    """``GET /api/models/{ns}/{name}/tree/{rev}[/{path}]``, paginated with ``Link: rel="next"``.

    The next page's link names the commit, not the revision, so pages never mix versions.
    """
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    version = selectors.version_resolve_hf(adapter=adapter, revision=revision)
    sha = selectors.version_commit_sha(version)
    recursive = request.GET.get("recursive", "").lower() in ("1", "true", "yes")
    under = path.strip("/")
    entries = tree_entries(_files(version), under, recursive)
    if entries is None:
        return _hub_error(
            NotFound(f"{version} has no folder `{under}`", code="entry_not_found"), {"X-Repo-Commit": sha}
        )
    page_size = max(1, int(getattr(settings, "PEFTHUB_HF_TREE_PAGE_SIZE", TREE_PAGE_SIZE)))
    cursor = request.GET.get("cursor", "0")
    start = int(cursor) if cursor.isdigit() else 0
    response = JsonResponse(entries[start : start + page_size], safe=False)
    response["X-Repo-Commit"] = sha
    if start + page_size < len(entries):
        kwargs = {"namespace": adapter.namespace.name, "name": adapter.name, "revision": sha}
        url = reverse("hf:model-tree-path", kwargs={**kwargs, "path": under}) if under else None
        url = url or reverse("hf:model-tree", kwargs=kwargs)
        query = {k: v for k, v in request.GET.items() if k != "cursor"} | {"cursor": start + page_size}
        response["Link"] = f'<{request.build_absolute_uri(url)}?{urlencode(query)}>; rel="next"'
    return response


@hf_view
def resolve(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str, path: str):
    """``HEAD``/``GET /{ns}/{name}/resolve/{rev}/{path}``: a file, whole or one byte range.

    At its commit (40 hex digits) the file itself; at any other revision a redirect there.
    """
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace, name=name)
    version = selectors.version_resolve_hf(adapter=adapter, revision=revision)
    sha = selectors.version_commit_sha(version)
    entry = next((f for f in version.files.all() if f.path == path), None)
    if entry is None:
        files = ", ".join(f.path for f in version.files.all())
        missing = NotFound(f"{version} has no file `{path}`; it has: {files}", code="entry_not_found")
        # The client caches "no such file in this commit" under X-Repo-Commit.
        return _hub_error(missing, {"X-Repo-Commit": sha})

    size = entry.blob.size
    etag = f'"{entry.blob_id}"'
    headers = {"X-Repo-Commit": sha, "ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(size)}
    if adapter.private:
        headers["Cache-Control"] = "private"
    if revision != sha:
        # Like the Hub's redirect of an LFS file to its content: the client's HEAD follows it
        # (same host, so the token goes along) and its GET then names the commit, so a moving
        # alias cannot hand it other bytes than the ETag it caches them under.
        kwargs = {"namespace": adapter.namespace.name, "name": adapter.name, "revision": sha, "path": path}
        response = HttpResponse(status=302, headers={**headers, "Location": reverse("hf:resolve", kwargs=kwargs)})
        _deprecation_warning(response, version)
        return response

    headers["Accept-Ranges"] = "bytes"
    headers["Content-Type"] = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers["Content-Disposition"] = content_disposition_header(False, path.rsplit("/", 1)[-1])
    if_range = request.headers.get("If-Range")
    byte_range = byte_range_of(request.headers.get("Range"), size) if if_range in (None, etag) else None
    if byte_range == _UNSATISFIABLE:
        response = _error(416, f"`{request.headers['Range']}` is outside `{path}` ({size} bytes)")
        response["Content-Range"] = f"bytes */{size}"
        return response

    status, start, length = 200, 0, size
    if byte_range is not None:
        first, last = byte_range
        status, start, length = 206, first, last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if request.method == "HEAD":
        response = HttpResponse(status=status, headers=headers)
    else:
        response = StreamingHttpResponse(_BlobBody(entry.blob_id, start, length), status=status, headers=headers)
    # Set last: the same for HEAD (no body) and GET, and never recomputed by Django.
    response["Content-Length"] = str(length)
    _deprecation_warning(response, version)
    return response


def byte_range_of(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` (inclusive) for a single ``bytes=`` range, ``"unsatisfiable"``, or
    None to send the whole file (no header, or one we ignore: other units, several ranges,
    malformed ones, as RFC 9110 allows)."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        suffix = int(last)
        return (max(size - suffix, 0), size - 1) if suffix and size else _UNSATISFIABLE
    start, end = int(first), int(last) if last else None
    if end is not None and end < start:
        return None
    if start >= size:
        return _UNSATISFIABLE
    return (start, size - 1 if end is None else min(end, size - 1))


class _BlobBody:
    """A blob's bytes for StreamingHttpResponse, opened before the response starts: a missing
    blob is then a 500, not a 200 cut short. Django calls ``close`` when the response ends."""

    def __init__(self, sha256: str, start: int, length: int) -> None:
        self._chunks = blob_iter(sha256, start, length)
        self._first = next(self._chunks, b"")

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        yield from self._chunks

    def close(self) -> None:
        self._chunks.close()


@hf_view
def whoami(request: HttpRequest, caller: Caller):
    """``GET /api/whoami-v2``: the token's user; namespaces shared with others are its orgs."""
    user = caller.user
    if not user.is_authenticated:
        return _unauthorized("whoami needs a token: pass token=<pefthub token> or set HF_TOKEN")
    roles = {"owner": "admin", "writer": "write", "reader": "read"}
    orgs = [
        {"type": "org", "name": m.namespace.name, "fullname": m.namespace.name, "roleInOrg": roles[m.role]}
        for m in user.memberships.select_related("namespace").order_by("namespace__name")
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
