"""Adapter names: ``namespace/name`` with an optional ``@ref``, and their API paths."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote

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


def as_repo(repo: str | RepoId) -> RepoId:
    return repo if isinstance(repo, RepoId) else parse_repo(repo)


def adapter_path(rid: RepoId) -> str:
    """The adapter's path under ``/api/v1/`` (no trailing slash)."""
    return f"adapters/{quote(rid.namespace)}/{quote(rid.name)}"


def version_path(rid: RepoId, version: int | str) -> str:
    return f"{adapter_path(rid)}/versions/{quote(str(version))}"
