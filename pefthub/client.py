"""The HTTP client for the hub's REST API (``/api/v1/``), built on ``requests``.

Every call goes through :meth:`Client._request`, which retries what is safe to retry
and turns each error answer into the matching :mod:`pefthub.errors` exception.

Uploads are retried too: the hub answers an upload whose files equal the adapter's
newest version with that version (200) instead of a new one, so sending the whole
upload again after a dropped connection never makes a duplicate, whether the first
try died before the hub had the body or after it stored the version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast
from urllib.parse import quote

import requests
from tqdm.auto import tqdm

from . import __version__
from .config import resolve_endpoint, resolve_token
from .errors import (
    ConflictError,
    ConnectionFailed,
    PefthubError,
    error_for_response,
)
from .multipart import MultipartBody, Part
from .types import Adapter, Alias, Version, Whoami

log = logging.getLogger("pefthub")

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
# What a Trainer writes next to the adapter in a checkpoint or output folder; the hub
# refuses pickles and has no use for optimizer state, so a folder push leaves them out.
TRAINER_STATE_FILES = frozenset(
    {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json"}
)
_TRAINER_STATE_RE = re.compile(r"^rng_state(_\d+)?\.pth$")
# Answers that mean "the request did not get through to the application; try again".
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO_RE = re.compile(rf"^(?P<namespace>{_NAME})/(?P<name>{_NAME})(?:@(?P<ref>[A-Za-z0-9._-]+))?$")


class RepoId(NamedTuple):
    """``namespace/name`` with an optional ``@ref`` (a version number, alias or hash)."""

    namespace: str
    name: str
    ref: str | None = None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" + (f"@{self.ref}" if self.ref else "")

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_repo(text: str) -> RepoId:
    """``"acme/support-bot@v3"`` -> ``RepoId("acme", "support-bot", "v3")``."""
    match = _REPO_RE.match(text.strip())
    if match is None:
        raise ValueError(
            f"`{text}` is not an adapter: write it as namespace/name, optionally with @version "
            "(acme/support-bot, acme/support-bot@v3, acme/support-bot@prod)"
        )
    return RepoId(match["namespace"], match["name"], match["ref"])


@dataclass(frozen=True)
class PushResult:
    """What an upload made: the version, and whether this request created it (False:
    the files equal the adapter's newest version, which the hub handed back; after a
    retry that version may be the one an earlier, cut-off try stored). ``tries`` counts
    the uploads sent."""

    repo: str
    version: int
    content_hash: str
    created: bool
    url: str
    data: Version = field(repr=False)
    tries: int = 1

    def summary(self) -> str:
        files = self.data.get("files", [])
        size = sum(f["size"] for f in files)
        if self.created:
            what = "new version"
        elif self.tries > 1:
            what = (
                "stored: an earlier try got through before its connection dropped, "
                "or the files equal the newest version"
            )
        else:
            what = "unchanged: same files as the newest version"
        return (
            f"{self.repo} v{self.version} ({what}; {len(files)} files, {human_size(size)}, "
            f"content hash {self.content_hash[:12]})\n"
            f"evaluation: {self.url} (status: {self.data.get('status', 'unknown')})"
        )


@dataclass(frozen=True)
class PullResult:
    repo: str
    version: int
    path: Path
    files: list[str]
    downloaded: list[str]


@dataclass(frozen=True)
class EvaluationStatus:
    """Where a version stands. ``status`` is the hub's verdict (pending, accepted,
    rejected) and ``reasons`` why; ``evaluation`` is the progress report of the
    evaluation service, None while the hub does not report one."""

    repo: str
    version: int
    status: str
    reasons: list[Any]
    evaluation: dict[str, Any] | None
    url: str
    deprecated: bool

    def describe(self) -> str:
        lines = [f"{self.repo} v{self.version}: {self.status}" + (" (deprecated)" if self.deprecated else "")]
        for reason in self.reasons:
            lines.append(f"  - {reason if isinstance(reason, str) else json.dumps(reason)}")
        if self.evaluation is None:
            if self.status == "pending":
                lines.append(
                    "evaluation: not started; this hub does not report evaluation progress yet, "
                    "the status changes once the evaluation service has scored the version"
                )
            else:
                lines.append("evaluation: no progress report from this hub")
        else:
            state = self.evaluation.get("state") or self.evaluation.get("status") or "?"
            progress = self.evaluation.get("progress")
            shown = f" ({progress:.0%})" if isinstance(progress, (int, float)) else ""
            lines.append(f"evaluation: {state}{shown}")
            for key, value in self.evaluation.items():
                if key not in ("state", "status", "progress"):
                    lines.append(f"  {key}: {value if isinstance(value, str) else json.dumps(value)}")
        lines.append(f"url: {self.url}")
        return "\n".join(lines)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def select_files(folder: str | os.PathLike[str], files: Iterable[str] | None = None) -> list[Path]:
    """The files of ``folder`` to upload, the adapter weights last.

    ``files`` names them; by default every visible top-level file except a Trainer's
    own state (optimizer, scheduler, RNG state, training arguments). The weights go
    last on purpose: a body cut short then always lacks them, so the hub refuses it
    as a whole instead of storing the parts that did arrive.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: push the folder save_pretrained wrote")
    if files is not None:
        chosen = []
        for name in files:
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist")
            chosen.append(path)
    else:
        chosen = [
            p
            for p in root.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.name not in TRAINER_STATE_FILES
            and not _TRAINER_STATE_RE.match(p.name)
        ]
    return sorted(chosen, key=lambda p: (p.name == WEIGHTS_NAME, p.name))


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


_Body = Callable[[], tuple[Any, dict[str, str]]]


class Client:
    """A session with one hub.

    ``endpoint`` defaults to ``PEFTHUB_ENDPOINT``, then http://127.0.0.1:8000; ``token``
    to ``PEFTHUB_TOKEN``, then the file ``pefthub login`` writes. Connection errors and
    502/503/504/429 answers are retried ``retries`` times with exponential backoff from
    ``backoff`` seconds. ``progress`` shows tqdm bars (None: when stderr is a terminal).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        timeout: float | tuple[float, float] = (10.0, 300.0),
        retries: int = 4,
        backoff: float = 0.5,
        progress: bool | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self.token = resolve_token(token)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.progress = progress
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"pefthub-client/{__version__} {requests.utils.default_user_agent()}"
        if self.token:
            self._session.headers["Authorization"] = f"Bearer {self.token}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # --- plumbing ------------------------------------------------------------------------------
    def api_url(self, path: str) -> str:
        return f"{self.endpoint}/api/v1/{path}"

    def version_url(self, repo: str | RepoId, version: int | str) -> str:
        """The API address of a version (the hub has no web page per version yet)."""
        rid = _repo(repo)
        return self.api_url(f"{_adapter_path(rid)}/versions/{version}/")

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        body: _Body | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send one request; retry it when safe; raise the matching error for 4xx/5xx.

        ``body`` makes a fresh request body (and its headers) for each try, since a
        streamed body is used up by the try that sent it.
        """
        url = path_or_url if "://" in path_or_url else self.api_url(path_or_url)
        tries = 1 + (self.retries if retry else 0)
        for attempt in range(1, tries + 1):
            data, headers = body() if body is not None else (None, {})
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    stream=stream,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if attempt < tries:
                    self._wait(attempt, tries, f"{method} {url}: {_reason(exc)}")
                    continue
                raise ConnectionFailed(
                    f"could not reach the hub at {self.endpoint} ({_reason(exc)})"
                    + (f" after {tries} tries" if tries > 1 else ""),
                ) from exc
            finally:
                close = getattr(data, "close", None)
                if close is not None:
                    close()
            if response.status_code in RETRY_STATUSES and attempt < tries:
                wait = _retry_after(response)
                response.close()
                self._wait(attempt, tries, f"{method} {url}: HTTP {response.status_code}", wait)
                continue
            if response.status_code >= 400:
                raise self._error(response)
            return response
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, tries: int, reason: str, seconds: float | None = None) -> None:
        if seconds is None:
            seconds = min(self.backoff * 2 ** (attempt - 1), 30.0) * (0.75 + random.random() / 2)
        log.warning("%s; retrying in %.1fs (try %d of %d)", reason, seconds, attempt + 1, tries)
        time.sleep(seconds)

    def _error(self, response: requests.Response) -> PefthubError:
        try:
            text = response.text
        except requests.RequestException:
            text = ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        return error_for_response(response.status_code, payload, url=response.url, text=text)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PefthubError(
                f"{method} {response.url} answered {response.status_code} with something that is not "
                "JSON: is the endpoint a pefthub server?",
                status=response.status_code,
            ) from None

    # --- identity ----------------------------------------------------------------------------
    def whoami(self) -> Whoami:
        """The token's user and their namespaces."""
        return cast(Whoami, self._json("GET", "whoami/"))

    # --- adapters ----------------------------------------------------------------------------
    def create_adapter(
        self, repo: str | RepoId, *, private: bool = False, description: str = "", exist_ok: bool = False
    ) -> Adapter | None:
        """Create an adapter in an existing namespace. With ``exist_ok``, an existing one is
        fine (its settings are left as they are) and None is returned for it."""
        rid = _repo(repo)
        try:
            return cast(
                Adapter,
                self._json(
                    "POST",
                    "adapters/",
                    json_body={
                        "namespace": rid.namespace,
                        "name": rid.name,
                        "private": private,
                        "description": description,
                    },
                ),
            )
        except ConflictError:
            # A retried create whose first try got through also lands here.
            if exist_ok:
                return None
            raise

    def get_adapter(self, repo: str | RepoId) -> Adapter:
        return cast(Adapter, self._json("GET", _adapter_path(_repo(repo)) + "/"))

    def list_adapters(self, *, namespace: str | None = None, q: str | None = None, **filters: str) -> Iterator[Adapter]:
        """The catalog, page by page (filters: base_model, method, task, status, ordering, …)."""
        params = {k: v for k, v in {"namespace": namespace, "q": q, **filters}.items() if v}
        url: str | None = "adapters/"
        while url:
            page = self._json("GET", url, params=params)
            params = {}  # the `next` link carries them
            yield from page.get("results", [])
            url = page.get("next")

    # --- versions ----------------------------------------------------------------------------
    def list_versions(self, repo: str | RepoId) -> list[Version]:
        return cast(list[Version], self._json("GET", _adapter_path(_repo(repo)) + "/versions/"))

    def get_version(self, repo: str | RepoId, ref: str | int | None = None) -> Version:
        """A version by number, alias or content hash; ``latest`` by default (or the repo's ``@ref``)."""
        rid = _repo(repo)
        ref = ref if ref is not None else (rid.ref or "latest")
        return cast(Version, self._json("GET", f"{_adapter_path(rid)}/versions/{quote(str(ref))}/"))

    def evaluation_status(self, repo: str | RepoId, ref: str | int | None = None) -> EvaluationStatus:
        """The version's verdict and, once the hub reports it, its evaluation's progress."""
        rid = _repo(repo)
        version = self.get_version(rid, ref)
        evaluation = version.get("evaluation")  # type: ignore[typeddict-item]
        return EvaluationStatus(
            repo=rid.full_name,
            version=version["version"],
            status=version.get("status", "unknown"),
            reasons=list(version.get("status_reasons") or []),
            evaluation=evaluation if isinstance(evaluation, dict) else None,
            url=self.version_url(rid, version["version"]),
            deprecated=bool(version.get("deprecated")),
        )

    def push(
        self,
        folder: str | os.PathLike[str],
        repo: str | RepoId,
        *,
        base_model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] = (),
        files: Iterable[str] | None = None,
        create: bool = True,
        private: bool = False,
        description: str = "",
        progress: bool | None = None,
    ) -> PushResult:
        """Upload the adapter in ``folder`` as a new version of ``repo``.

        ``metadata`` is the card (task_tags, license, datasets, training_time_seconds,
        training_hardware, num_training_examples, training_run_url, parent,
        quantization, extra). The adapter is created first when missing (``create``;
        ``private``/``description`` apply only then). A dropped connection is retried;
        the hub's dedupe makes that safe.
        """
        rid = _repo(repo)
        if rid.ref:
            raise ValueError(f"push to {rid.full_name}, not to a version ({rid})")
        paths = select_files(folder, files)
        if create:
            self.create_adapter(rid, private=private, description=description, exist_ok=True)
        fields: list[Part] = []
        if base_model:
            fields.append(Part("base_model", value=base_model))
        if metadata:
            fields.append(Part("metadata", value=json.dumps(dict(metadata))))
        fields.extend(Part("aliases", value=alias) for alias in aliases)
        parts = fields + [Part("files", path=p, filename=p.name) for p in paths]

        # Every body has the same length (the boundary's length is fixed), so the bar's
        # total is known before the first try.
        bar = tqdm(
            total=len(MultipartBody(parts)),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"push {rid.full_name}",
            disable=not _progress_enabled(self.progress if progress is None else progress),
            leave=True,
        )

        tries = 0

        def make_body() -> tuple[MultipartBody, dict[str, str]]:
            nonlocal tries
            tries += 1
            bar.reset()
            payload = MultipartBody(parts, on_read=bar.update)
            return payload, {"Content-Type": payload.content_type}

        try:
            response = self._request("POST", f"{_adapter_path(rid)}/versions/", body=make_body)
        finally:
            bar.close()
        version = cast(Version, response.json())
        return PushResult(
            repo=rid.full_name,
            version=version["version"],
            content_hash=version["content_hash"],
            created=response.status_code == 201,
            url=self.version_url(rid, version["version"]),
            data=version,
            tries=tries,
        )

    def pull(
        self,
        repo: str | RepoId,
        dest: str | os.PathLike[str] | None = None,
        *,
        ref: str | int | None = None,
        progress: bool | None = None,
    ) -> PullResult:
        """Download a version's files into ``dest`` (default: a folder named after the adapter).

        Each file is checked against the sha256 the hub lists; files already there with
        the right hash are kept, so an interrupted pull resumes where it stopped.
        """
        rid = _repo(repo)
        version = self.get_version(rid, ref)
        number = version["version"]
        target = Path(dest) if dest is not None else Path(rid.name)
        target.mkdir(parents=True, exist_ok=True)
        entries = version.get("files", [])
        todo = []
        for entry in entries:
            name = entry["path"]
            if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
                raise PefthubError(f"the hub listed a file name that is not a plain name: {name!r}")
            path = target / name
            if path.is_file() and path.stat().st_size == entry["size"] and _sha256(path) == entry["sha256"]:
                continue
            todo.append(entry)
        bar = tqdm(
            total=sum(e["size"] for e in todo),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"pull {rid.full_name}@v{number}",
            disable=not todo or not _progress_enabled(self.progress if progress is None else progress),
        )
        try:
            for entry in todo:
                self._download(rid, number, entry["path"], entry["sha256"], target, bar)
        finally:
            bar.close()
        return PullResult(
            repo=rid.full_name,
            version=number,
            path=target,
            files=[e["path"] for e in entries],
            downloaded=[e["path"] for e in todo],
        )

    def _download(self, rid: RepoId, number: int, name: str, sha256: str, target: Path, bar: tqdm) -> None:
        url = f"{_adapter_path(rid)}/versions/{number}/files/{quote(name)}"
        partial = target / f".{name}.part"
        tries = 1 + self.retries
        for attempt in range(1, tries + 1):
            start = bar.n
            digest = hashlib.sha256()
            response = self._request("GET", url, stream=True)
            try:
                with open(partial, "wb") as handle:
                    for chunk in response.iter_content(chunk_size=256 * 1024):
                        handle.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                bar.update(start - bar.n)
                if attempt < tries:
                    self._wait(attempt, tries, f"download of {name}: {_reason(exc)}")
                    continue
                partial.unlink(missing_ok=True)
                raise ConnectionFailed(f"download of {name} kept failing ({_reason(exc)})") from exc
            finally:
                response.close()
            if digest.hexdigest() != sha256:
                partial.unlink(missing_ok=True)
                raise PefthubError(f"{name}: the download's sha256 is {digest.hexdigest()} but the hub lists {sha256}")
            os.replace(partial, target / name)
            return

    # --- aliases -----------------------------------------------------------------------------
    def list_aliases(self, repo: str | RepoId) -> list[Alias]:
        return cast(list[Alias], self._json("GET", _adapter_path(_repo(repo)) + "/aliases/"))

    def set_alias(self, repo: str | RepoId, alias: str, version: str | int) -> Alias:
        """Point ``alias`` at a version (number, alias or content hash)."""
        return cast(
            Alias,
            self._json(
                "PUT",
                f"{_adapter_path(_repo(repo))}/aliases/{quote(alias)}/",
                json_body={"version": str(version)},
            ),
        )

    def delete_alias(self, repo: str | RepoId, alias: str) -> None:
        self._json("DELETE", f"{_adapter_path(_repo(repo))}/aliases/{quote(alias)}/")


def _repo(repo: str | RepoId) -> RepoId:
    return repo if isinstance(repo, RepoId) else parse_repo(repo)


def _adapter_path(rid: RepoId) -> str:
    return f"adapters/{quote(rid.namespace)}/{quote(rid.name)}"


def _reason(exc: BaseException) -> str:
    # requests nests the socket error a few levels deep; its innermost text is the useful one.
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return f"{type(exc).__name__}: {text}" if inner is not exc else text


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(float(value), 60.0)
    except ValueError:
        return None


# --- the one-liners a training script ends with ------------------------------------------------
def push(
    folder: str | os.PathLike[str],
    repo: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    base_model: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    aliases: Sequence[str] = (),
    files: Iterable[str] | None = None,
    private: bool = False,
    description: str = "",
    progress: bool | None = None,
    quiet: bool = False,
) -> PushResult:
    """Upload ``folder`` (what peft's ``save_pretrained`` wrote) to ``repo`` (namespace/name)
    and print the version and where to follow its evaluation (unless ``quiet``)."""
    with Client(endpoint, token, progress=progress) as client:
        result = client.push(
            folder,
            repo,
            base_model=base_model,
            metadata=metadata,
            aliases=aliases,
            files=files,
            private=private,
            description=description,
        )
    if not quiet:
        print(result.summary())
    return result


def pull(
    repo: str,
    dest: str | os.PathLike[str] | None = None,
    *,
    ref: str | int | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    progress: bool | None = None,
) -> PullResult:
    """Download a version (``namespace/name``, ``namespace/name@v3`` or ``@alias``) into ``dest``."""
    with Client(endpoint, token, progress=progress) as client:
        return client.pull(repo, dest, ref=ref)
