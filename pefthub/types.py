"""The shapes of the hub's JSON answers the client hands back (``total=False``: the
hub may add fields, and the client never assumes more than it reads)."""

from __future__ import annotations

from typing import Any, TypedDict


class FileEntry(TypedDict):
    path: str
    size: int
    sha256: str


class Card(TypedDict, total=False):
    method: str
    peft_type: str
    rank: int | None
    alpha: float | None
    target_modules: list[str]
    num_virtual_tokens: int | None
    trainable_params: int
    size_bytes: int
    quantization: dict[str, Any] | None
    task_tags: list[str]
    license: str
    datasets: list[str]
    training_time_seconds: float | None
    training_hardware: str
    num_training_examples: int | None
    lineage: dict[str, Any]
    flags: list[str]


class Version(TypedDict, total=False):
    id: int
    adapter: str
    version: int
    content_hash: str
    status: str
    status_reasons: list[Any]
    deprecated: bool
    deprecated_at: str | None
    deprecation_reason: str
    created_at: str
    card: Card
    aliases: list[str]
    files: list[FileEntry]
    metadata: dict[str, Any]
    readme: str
    config: dict[str, Any]


class VersionSummary(TypedDict, total=False):
    id: int
    version: int
    content_hash: str
    status: str
    deprecated_at: str | None
    created_at: str
    card: Card


class Adapter(TypedDict, total=False):
    full_name: str
    namespace: str
    name: str
    private: bool
    description: str
    version_count: int
    created_at: str
    updated_at: str
    latest: VersionSummary | None


class Alias(TypedDict):
    name: str
    version: int
    updated_at: str


class NamespaceRole(TypedDict):
    name: str
    role: str


class Whoami(TypedDict):
    username: str
    namespaces: list[NamespaceRole]


class ArmRun(TypedDict, total=False):
    id: int
    suite: str
    arm: str
    backend: str
    metrics: dict[str, dict[str, Any]]
    duration_seconds: float
    created_at: str


class EvaluationJob(TypedDict, total=False):
    """One evaluation of a version on one suite (``/api/v1/evaluations/<id>/``)."""

    id: int
    adapter: str
    version: int
    suite: str
    status: str
    progress: float
    current: str
    error: str
    decision: str
    reasons: list[str]
    summary: dict[str, Any]
    reused: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    runs: list[ArmRun]
