"""Adapter versions fetched from a hub into a local cache, one verified folder per content hash.

:class:`AdapterCache` is what a serving node needs to load ``ns/name@ref`` without the hub
in the request path (the vLLM resolver in :mod:`pefthub.vllm_resolver` is built on it):

1. The REST API says which version ``ref`` names (a number, an alias such as
   ``production``, ``latest`` when there is none, or a content hash), with its files and
   their sha256. The file list must hash to the version's content hash, so it is the
   list of that content and no other.
2. Each file is downloaded through the hub's Hugging Face endpoint at the version's
   commit (``/{ns}/{name}/resolve/{commit}/{file}``), so an alias that moves meanwhile
   cannot mix two versions, and its bytes must have the listed size and sha256.
3. The files are written into a temporary folder beside the cache entry, which is
   renamed to ``<root>/<content hash>`` only once all of them passed: a folder in the
   cache is complete and verified, or it is not there. Aliases and versions with the same
   content share one folder, and a restarted node finds it again (checked once per
   process before it is handed out, and fetched again if it no longer matches).

Any refusal raises :class:`pefthub.PefthubError` with what went wrong and what to fix.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .errors import ConnectionFailed, PefthubError
from .files import CONFIG_NAME, sha256_file
from .http import HttpClient, reason
from .repo import RepoId, adapter_path, as_repo

CACHE_ENV = "PEFTHUB_RESOLVER_CACHE"
COMPLETE = ".complete"
# The hub's HF endpoint names a version's commit by the first 40 hex digits of its content hash.
COMMIT_LENGTH = 40
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    """``PEFTHUB_RESOLVER_CACHE``, else ``$XDG_CACHE_HOME/pefthub/adapters`` (``~/.cache/…``)."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pefthub" / "adapters"


def manifest_hash(files: dict[str, str]) -> str:
    """The content hash the hub gives a version with these files (path -> sha256)."""
    manifest = "".join(f"{path}\0{files[path]}\n" for path in sorted(files))
    return hashlib.sha256(manifest.encode()).hexdigest()


@dataclass(frozen=True)
class CachedAdapter:
    """A version's verified folder: ``repo`` as asked (``ns/name@ref``), the version it named."""

    repo: RepoId
    version: int
    content_hash: str
    path: Path
    base_model: str | None
    peft_type: str | None
    deprecated: bool
    downloaded: bool  # False when the folder was already in the cache


class AdapterCache:
    """Fetches versions from one hub into ``root`` (see the module docstring).

    ``endpoint`` and ``token`` default as for :class:`pefthub.Client` (``PEFTHUB_ENDPOINT``,
    ``PEFTHUB_TOKEN``); ``root`` to :func:`default_cache_dir`. Thread-safe: two threads
    that ask for the same content at once both get the one folder.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float | tuple[float, float] = (10.0, 300.0),
        session: requests.Session | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.http = HttpClient(
            endpoint, token, retries=retries, backoff=backoff, timeout=timeout, progress=False, session=session
        )
        self._verified: set[str] = set()  # content hashes checked on disk by this process
        self._locks: dict[str, threading.Lock] = {}  # one per content hash: others do not wait
        self._locks_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.http.endpoint

    def close(self) -> None:
        self.http.close()

    def version_info(self, repo: str | RepoId) -> dict[str, Any]:
        """The hub's version detail for ``ns/name@ref`` (``latest`` without a ref)."""
        rid = as_repo(repo)
        ref = rid.ref or "latest"
        info = self.http._json("GET", f"{adapter_path(rid)}/versions/{quote(ref)}/")
        if not isinstance(info, dict):
            raise PefthubError(f"{self.endpoint} answered {rid} with something that is not a version")
        return info

    def fetch(self, repo: str | RepoId) -> CachedAdapter:
        """The verified local folder of ``ns/name@ref``, downloaded unless already cached."""
        rid = as_repo(repo)
        return self.fetch_version(rid, self.version_info(rid))

    def fetch_version(self, rid: RepoId, info: dict[str, Any]) -> CachedAdapter:
        """The verified local folder of the version :meth:`version_info` gave for ``rid``."""
        try:
            number = int(info["version"])
        except (KeyError, TypeError, ValueError):
            raise PefthubError(f"{self.endpoint} answered {rid} without a version number: is it a pefthub hub?")
        content_hash = str(info.get("content_hash", ""))
        if not _HASH_RE.match(content_hash):
            raise PefthubError(f"{rid}: the hub gave v{number} no valid content hash ({content_hash!r})")
        files = _file_list(rid, number, info.get("files"))
        if manifest_hash({name: entry["sha256"] for name, entry in files.items()}) != content_hash:
            raise PefthubError(
                f"{rid}: the files the hub lists for v{number} do not hash to its content hash {content_hash}; "
                "the listing was altered on the way, or the endpoint is not a pefthub hub"
            )
        card = info.get("card") or {}
        lineage = card.get("lineage") or {}
        target = self.root / content_hash
        with self._locks_lock:
            lock = self._locks.setdefault(content_hash, threading.Lock())
        with lock:
            downloaded = False
            if not self._cached(target, content_hash, files):
                self._download(rid, number, content_hash, files, target)
                downloaded = True
            self._verified.add(content_hash)
        return CachedAdapter(
            repo=rid,
            version=number,
            content_hash=content_hash,
            path=target,
            base_model=lineage.get("base_model"),
            peft_type=card.get("peft_type"),
            deprecated=bool(info.get("deprecated")),
            downloaded=downloaded,
        )

    # --- the cache on disk ---------------------------------------------------------------------
    def _cached(self, target: Path, content_hash: str, files: dict[str, dict[str, Any]]) -> bool:
        """Whether ``target`` holds this content; a folder that no longer does is removed."""
        marker = target / COMPLETE
        try:
            complete = marker.read_text().strip() == content_hash
        except OSError:
            complete = False
        if complete and content_hash in self._verified:
            return True
        if complete and _folder_matches(target, files):
            return True
        if target.exists():
            # Incomplete, or changed since it was written: never hand it out, fetch it anew.
            shutil.rmtree(target, ignore_errors=True)
        return False

    def _download(
        self, rid: RepoId, number: int, content_hash: str, files: dict[str, dict[str, Any]], target: Path
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{content_hash}.{uuid.uuid4().hex}.tmp"
        tmp.mkdir()
        try:
            commit = content_hash[:COMMIT_LENGTH]
            for name, entry in files.items():
                self._download_file(rid, number, commit, name, entry, tmp / name)
            (tmp / COMPLETE).write_text(content_hash)
            try:
                tmp.rename(target)
            except OSError:  # another process finished the same content first
                if not (target / COMPLETE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _download_file(
        self, rid: RepoId, number: int, commit: str, name: str, entry: dict[str, Any], dest: Path
    ) -> None:
        url = f"{self.endpoint}/{quote(rid.namespace)}/{quote(rid.name)}/resolve/{commit}/{quote(name)}"
        size, sha256 = int(entry["size"]), str(entry["sha256"])
        tries = 1 + self.http.retries
        for attempt in range(1, tries + 1):
            digest = hashlib.sha256()
            written = 0
            response = self.http._request("GET", url, stream=True)
            try:
                with open(dest, "wb") as handle:
                    for chunk in response.iter_content(chunk_size=256 * 1024):
                        written += len(chunk)
                        if written > size:
                            break  # more than the listed size: refused below, no need to read on
                        digest.update(chunk)
                        handle.write(chunk)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                if attempt < tries:
                    self.http._wait(attempt, tries, f"download of {rid}@v{number} {name}: {reason(exc)}")
                    continue
                raise ConnectionFailed(
                    f"{rid}: the download of `{name}` (v{number}) kept breaking off ({reason(exc)}); "
                    f"check the connection to {self.endpoint}"
                ) from exc
            finally:
                response.close()
            if written != size or digest.hexdigest() != sha256:
                got = f"{written} bytes" if written != size else f"sha256 {digest.hexdigest()}"
                want = f"{size} bytes" if written != size else f"sha256 {sha256}"
                raise PefthubError(
                    f"{rid}: `{name}` of v{number} came with {got} but the hub lists {want}; refused, "
                    "nothing was cached. The file was altered on the way or in the hub's store: "
                    "ask the hub's operator to check its blobs"
                )
            return


def _file_list(rid: RepoId, number: int, listed: Any) -> dict[str, dict[str, Any]]:
    """The version's files by name, each a plain file name with a size and a sha256."""
    if not isinstance(listed, list) or not listed:
        raise PefthubError(f"{rid}: the hub lists no files for v{number}")
    files: dict[str, dict[str, Any]] = {}
    for entry in listed:
        name = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", "..") or name[0] == ".":
            raise PefthubError(f"{rid}: the hub listed a file name that is not a plain name: {name!r}")
        sha256, size = entry.get("sha256"), entry.get("size")
        if not isinstance(sha256, str) or not _HASH_RE.match(sha256) or not isinstance(size, int) or size < 0:
            raise PefthubError(f"{rid}: the hub listed `{name}` of v{number} without a valid size and sha256")
        files[name] = entry
    if CONFIG_NAME not in files:
        raise PefthubError(f"{rid}: v{number} has no {CONFIG_NAME}, so it is not a PEFT adapter")
    return files


def _folder_matches(folder: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Whether ``folder`` holds exactly these files with these hashes (and the marker)."""
    try:
        present = {p.name for p in folder.iterdir()} - {COMPLETE}
        if present != set(files):
            return False
        return all(
            (folder / name).stat().st_size == entry["size"] and sha256_file(folder / name) == entry["sha256"]
            for name, entry in files.items()
        )
    except OSError:
        return False
