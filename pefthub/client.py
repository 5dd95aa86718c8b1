"""The client for the hub's REST API (``/api/v1/``): adapters, versions, files, aliases.

:class:`Client` adds the hub's calls to :class:`pefthub.http.HttpClient`, which sends
them, retries what is safe to retry and raises :mod:`pefthub.errors` exceptions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from tqdm.auto import tqdm

from . import evaluation
from .errors import ConflictError, NotFoundError, PefthubError
from .files import select_files, sha256_file
from .http import HttpClient
from .multipart import MultipartBody, Part
from .repo import RepoId, adapter_path, as_repo, version_path
from .results import EvaluationStatus, PullResult, PushResult
from .transfer import download_file, push_parts
from .types import Adapter, Alias, EvaluationJob, Version, Whoami


class Client(HttpClient):
    """A session with one hub.

    ``endpoint`` defaults to ``PEFTHUB_ENDPOINT``, then http://127.0.0.1:8000; ``token``
    to ``PEFTHUB_TOKEN``, then the file ``pefthub login`` writes. Connection errors and
    502/503/504/429 answers are retried ``retries`` times with exponential backoff from
    ``backoff`` seconds. ``progress`` shows tqdm bars (None: when stderr is a terminal).
    """

    def __enter__(self) -> Client:
        return self

    def version_url(self, repo: str | RepoId, version: int | str) -> str:
        """The API address of a version (the hub has no web page per version yet)."""
        return self.api_url(version_path(as_repo(repo), version) + "/")

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
        rid = as_repo(repo)
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
        return cast(Adapter, self._json("GET", adapter_path(as_repo(repo)) + "/"))

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
        return cast(list[Version], self._json("GET", adapter_path(as_repo(repo)) + "/versions/"))

    def get_version(self, repo: str | RepoId, ref: str | int | None = None) -> Version:
        """A version by number, alias or content hash; ``latest`` by default (or the repo's ``@ref``)."""
        rid = as_repo(repo)
        ref = ref if ref is not None else (rid.ref or "latest")
        return cast(Version, self._json("GET", version_path(rid, ref) + "/"))

    def list_evaluations(self, repo: str | RepoId, ref: str | int | None = None) -> list[EvaluationJob]:
        """The version's evaluation jobs (one per suite and re-run, newest first), with
        their progress, arms, decision and reasons."""
        rid = as_repo(repo)
        ref = ref if ref is not None else (rid.ref or "latest")
        return cast(list[EvaluationJob], self._json("GET", version_path(rid, ref) + "/evaluations/"))

    def evaluation_status(self, repo: str | RepoId, ref: str | int | None = None) -> EvaluationStatus:
        """The version's verdict and its evaluation jobs."""
        rid = as_repo(repo)
        version = self.get_version(rid, ref)
        jobs: list[EvaluationJob] | None
        try:
            jobs = self.list_evaluations(rid, version["version"])
        except NotFoundError:
            jobs = None  # the version exists, so the hub has no evaluations API
        return EvaluationStatus(
            repo=rid.full_name,
            version=version["version"],
            status=version.get("status", "unknown"),
            reasons=list(version.get("status_reasons") or []),
            jobs=jobs,
            url=self.version_url(rid, version["version"]),
            deprecated=bool(version.get("deprecated")),
        )

    def wait_for_evaluation(
        self,
        repo: str | RepoId,
        ref: str | int | None = None,
        *,
        timeout: float | None = None,
        interval: float = 5.0,
        progress: bool | None = None,
    ) -> EvaluationStatus:
        """Follow the version's evaluation until it has an outcome (``.outcome``:
        accepted, rejected, failed or cancelled), with a progress bar; raise
        :class:`pefthub.EvaluationTimeout` after ``timeout`` seconds."""
        rid = as_repo(repo)
        number = self.get_version(rid, ref)["version"]  # `latest` may move meanwhile
        bar = tqdm(
            total=100,
            desc=f"evaluate {rid.full_name} v{number}",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}] {postfix}",
            disable=not self._progress(progress),
            leave=True,
        )

        def update(status: EvaluationStatus) -> None:
            done, now = evaluation.overall_progress(status.jobs)
            bar.n = round(done * 100)
            bar.set_postfix_str(now if status.outcome is None else status.outcome, refresh=False)
            bar.refresh()

        try:
            return evaluation.follow(
                lambda: self.evaluation_status(rid, number), timeout=timeout, interval=interval, on_update=update
            )
        finally:
            bar.close()

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
        quantization, extra), laid over what the ``training_metadata.json`` in ``folder``
        records (a training recipe writes it beside the weights): a field of
        ``metadata`` wins, and ``extra`` is merged key by key.

        The adapter is created first when missing (``create``; ``private`` and
        ``description`` apply only then). A dropped connection is retried; the hub's
        dedupe makes that safe.
        """
        rid = as_repo(repo)
        if rid.ref:
            raise ValueError(f"push to {rid.full_name}, not to a version ({rid})")
        paths = select_files(folder, files)
        if create:
            self.create_adapter(rid, private=private, description=description, exist_ok=True)
        parts = push_parts(folder, paths, base_model=base_model, metadata=metadata, aliases=aliases)

        # Every body has the same length (the boundary's length is fixed), so the bar's
        # total is known before the first try.
        bar = tqdm(
            total=len(MultipartBody(parts)),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"push {rid.full_name}",
            disable=not self._progress(progress),
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
            response = self._request("POST", f"{adapter_path(rid)}/versions/", body=make_body)
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

    # --- suites ------------------------------------------------------------------------------
    def push_suite(self, folder: str | Path) -> tuple[dict[str, Any], bool, list[str]]:
        """Register an evaluation suite folder (staff only): (the suite, whether it is new,
        the files of the folder left out as not suite data). A new version retires the older."""
        import tempfile

        from .suites import pack_suite

        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / f"{Path(folder).resolve().name}.tar.gz"
            _, skipped = pack_suite(folder, archive)
            parts = [Part(name="archive", path=archive)]

            def make_body() -> tuple[MultipartBody, dict[str, str]]:
                payload = MultipartBody(parts)
                return payload, {"Content-Type": payload.content_type}

            # Safe to retry: the same content again answers with the registered suite.
            response = self._request("POST", "suites/", body=make_body)
        return cast(dict[str, Any], response.json()), response.status_code == 201, skipped

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
        rid = as_repo(repo)
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
            if path.is_file() and path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]:
                continue
            todo.append(entry)
        bar = tqdm(
            total=sum(e["size"] for e in todo),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"pull {rid.full_name}@v{number}",
            disable=not todo or not self._progress(progress),
        )
        try:
            for entry in todo:
                url = f"{adapter_path(rid)}/versions/{number}/files/{quote(entry['path'])}"
                download_file(self, url, name=entry["path"], sha256=entry["sha256"], target=target, bar=bar)
        finally:
            bar.close()
        return PullResult(
            repo=rid.full_name,
            version=number,
            path=target,
            files=[e["path"] for e in entries],
            downloaded=[e["path"] for e in todo],
        )

    # --- aliases -----------------------------------------------------------------------------
    def list_aliases(self, repo: str | RepoId) -> list[Alias]:
        return cast(list[Alias], self._json("GET", adapter_path(as_repo(repo)) + "/aliases/"))

    def set_alias(self, repo: str | RepoId, alias: str, version: str | int) -> Alias:
        """Point ``alias`` at a version (number, alias or content hash)."""
        return cast(
            Alias,
            self._json(
                "PUT",
                f"{adapter_path(as_repo(repo))}/aliases/{quote(alias)}/",
                json_body={"version": str(version)},
            ),
        )

    def delete_alias(self, repo: str | RepoId, alias: str) -> None:
        self._json("DELETE", f"{adapter_path(as_repo(repo))}/aliases/{quote(alias)}/")


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
