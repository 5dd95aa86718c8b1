"""What a repo id and a revision name: an adapter or a base model, and one commit of it."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.urls import reverse

from hub import selectors, services
from hub.exceptions import NotFound
from hub.models import Adapter, BaseModel
from hub.storage.blobstore import read_range

from .files import version_files
from .protocol import Caller

if TYPE_CHECKING:
    from hub.models import AdapterVersion


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


def repo_find(caller: Caller, namespace: str | None, name: str) -> Adapter | BaseModel:
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


def commit_find(repo: Adapter | BaseModel, revision: str, repo_id: str) -> tuple[Commit, Any]:
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
        files=version_files(version),
        private=repo.private,
        label=str(version),
        version=version,
    )
    return commit, version


def hf_reverse(view: str, repo_id: str, **kwargs: str) -> str:
    """The URL of ``view`` for a repo id: ``ns/name`` routes, or the base model ones."""
    namespace, _, name = repo_id.rpartition("/")
    if namespace:
        return reverse(f"hf:{view}", kwargs={"namespace": namespace, "name": name, **kwargs})
    return reverse(f"hf:base-{view}", kwargs={"name": name, **kwargs})


def join_repo_id(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
