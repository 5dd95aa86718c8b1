"""Reading a suite folder: ``suite.json``, task YAMLs, data and corpus, and its hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from hub.exceptions import HubError

SHIPPED_DIR = Path(__file__).resolve().parent / "suites"
_HASHED_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".py", ".txt", ".md"}


@dataclass(frozen=True)
class SuiteManifest:
    slug: str
    version: str
    name: str
    description: str
    role: str
    tasks: list[str]
    retriever: str
    top_k: int
    system_instruction: str
    policy: dict
    general_suite: str | None
    corpus: str | None
    primary_metrics: dict[str, str] = field(default_factory=dict)


def suite_hash(folder: Path) -> str:
    """sha256 over the suite's files (relative path + content), build caches excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in rel or path.suffix not in _HASHED_SUFFIXES:
            continue
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_manifest(folder: Path) -> SuiteManifest:
    """Parse and check ``suite.json``; every problem is a message naming the field."""
    path = folder / "suite.json"
    if not path.is_file():
        raise HubError(f"{folder.name}: suite.json is missing", file="suite.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise HubError(f"suite.json is not valid JSON: {exc}", file="suite.json") from exc
    for key in ("slug", "version", "tasks"):
        if not data.get(key):
            raise HubError(f"suite.json has no `{key}`", file="suite.json", field=key)
    tasks = data["tasks"]
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise HubError("suite.json `tasks` must be a list of lm-eval task names", file="suite.json", field="tasks")
    role = data.get("role", "domain")
    if role not in ("domain", "general"):
        raise HubError(f"suite.json `role` is `{role}`; use domain or general", file="suite.json", field="role")
    corpus = data.get("corpus")
    if corpus and not (folder / corpus).is_file():
        raise HubError(
            f"suite.json names corpus `{corpus}`, which is not in the suite", file="suite.json", field="corpus"
        )
    retrieval = data.get("retrieval") or {}
    return SuiteManifest(
        slug=str(data["slug"]),
        version=str(data["version"]),
        name=str(data.get("name") or data["slug"]),
        description=str(data.get("description", "")),
        role=role,
        tasks=list(tasks),
        retriever=str(retrieval.get("retriever", data.get("retriever", "bm25"))),
        top_k=int(retrieval.get("top_k", data.get("top_k", 3))),
        system_instruction=str(data.get("system_instruction", "")),
        policy=dict(data.get("policy") or {}),
        general_suite=data.get("general_suite"),
        corpus=corpus,
        primary_metrics=dict(data.get("primary_metrics") or {}),
    )


def shipped_suite_dirs() -> list[Path]:
    return sorted(p.parent for p in SHIPPED_DIR.glob("*/suite.json"))
