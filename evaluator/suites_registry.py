"""Reading a suite folder: ``suite.json``, task YAMLs or built-in task kinds, data and
corpus, and its hash. The data files themselves are checked in :mod:`evaluator.suite_check`."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from hub.exceptions import HubError

from .suite_kinds import KINDS, TaskSpec, lmeval_files, parse_task, write_folder

SHIPPED_DIR = Path(__file__).resolve().parent / "suites"
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,31}")
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
    # Built-in tasks (``{"name", "kind"}`` entries); empty when the suite brings its own YAMLs.
    kinds: tuple[TaskSpec, ...] = ()


def _files_hash(folder: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in rel or path.suffix not in _HASHED_SUFFIXES:
            continue
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest


def suite_hash(folder: Path, manifest: SuiteManifest | None = None) -> str:
    """sha256 over the suite's files (relative path + content), build caches excluded, and
    for built-in task kinds over the task YAMLs and scoring code the hub generates: the
    same data scored by other code is other content."""
    digest = _files_hash(folder)
    manifest = manifest or read_manifest(folder)
    if manifest.kinds:
        generated = lmeval_files(folder, slug=manifest.slug, tasks=manifest.kinds)
        for name in sorted(generated):
            digest.update(b"generated/" + name.encode() + b"\0" + hashlib.sha256(generated[name]).digest())
    return digest.hexdigest()


def lmeval_folder(folder: Path, *, root: Path) -> Path:
    """The folder lm-eval loads the suite's tasks from (``--include_path``): the suite itself
    when it brings its own YAMLs, else the one the hub generates for it under ``root``."""
    manifest = read_manifest(folder)
    if not manifest.kinds:
        return folder
    return write_folder(lmeval_files(folder, slug=manifest.slug, tasks=manifest.kinds), root)


def tasks_folder(folder: Path) -> Path:
    """:func:`lmeval_folder` under this hub's ``PEFTHUB_SUITES_DIR``: what a worker runs."""
    from django.conf import settings

    return lmeval_folder(folder, root=Path(settings.PEFTHUB_SUITES_DIR) / "_generated")


def _tasks(raw: object) -> tuple[list[str], tuple[TaskSpec, ...]]:
    """Task names, and the built-in tasks when ``tasks`` holds ``{"name", "kind"}`` objects."""
    if not isinstance(raw, list) or not raw:
        raise HubError(
            'suite.json `tasks` must be a list: built-in tasks ({"name": "my_mc", "kind": "multiple_choice"}) '
            "or the names of lm-eval tasks whose YAMLs the suite holds",
            file="suite.json",
            field="tasks",
        )
    if all(isinstance(t, str) for t in raw):
        return list(raw), ()
    if any(isinstance(t, str) for t in raw):
        raise HubError(
            "suite.json `tasks` mixes task names and built-in tasks; use one or the other",
            file="suite.json",
            field="tasks",
        )
    specs = tuple(parse_task(entry, i) for i, entry in enumerate(raw))
    names = [t.name for t in specs]
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise HubError(f"suite.json names task `{dup}` twice", file="suite.json", field="tasks")
    return names, specs


def read_manifest(folder: Path) -> SuiteManifest:
    """Parse and check ``suite.json``; every problem is a message naming the field."""
    path = folder / "suite.json"
    if not path.is_file():
        raise HubError(f"{folder.name}: suite.json is missing", file="suite.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise HubError(f"suite.json is not valid JSON: {exc}", file="suite.json") from exc
    if not isinstance(data, dict):
        raise HubError("suite.json must be a JSON object", file="suite.json")
    for key in ("slug", "version", "tasks"):
        if not data.get(key):
            raise HubError(f"suite.json has no `{key}`", file="suite.json", field=key)
    if not isinstance(data["slug"], str) or not _SLUG.fullmatch(data["slug"]):
        raise HubError(
            "suite.json `slug` must be lower-case letters, digits, `-` and `_` (100 at most), e.g. support-faq",
            file="suite.json",
            field="slug",
        )
    if not isinstance(data["version"], str) or not _VERSION.fullmatch(data["version"]):
        raise HubError(
            "suite.json `version` must be a string like 1.0.0 (letters, digits, `.`, `-`, `+`; 32 at most)",
            file="suite.json",
            field="version",
        )
    tasks, kinds = _tasks(data["tasks"])
    role = data.get("role", "domain")
    if role not in ("domain", "general"):
        raise HubError(f"suite.json `role` is `{role}`; use domain or general", file="suite.json", field="role")
    corpus = data.get("corpus")
    if corpus is None and (folder / "corpus.jsonl").is_file():
        corpus = "corpus.jsonl"
    if corpus is not None and (not isinstance(corpus, str) or "/" in corpus or corpus.startswith(".")):
        raise HubError("suite.json `corpus` must name a file in the suite folder", file="suite.json", field="corpus")
    if corpus and not (folder / corpus).is_file():
        raise HubError(
            f"suite.json names corpus `{corpus}`, which is not in the suite", file="suite.json", field="corpus"
        )
    if role == "domain" and not corpus:
        raise HubError(
            "a domain suite needs a retrieval corpus for its RAG arms: add corpus.jsonl "
            '({"id", "title", "text"} per line) and name it in suite.json (`"corpus": "corpus.jsonl"`)',
            file="suite.json",
            field="corpus",
        )
    policy = data.get("policy") or {}
    if not isinstance(policy, dict):
        raise HubError("suite.json `policy` must be an object", file="suite.json", field="policy")
    for key in ("min_domain_score", "min_gain_over_base", "max_forgetting"):
        value = policy.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise HubError(
                f"suite.json `policy.{key}` must be a number (a share, e.g. 0.05 for 5 points)",
                file="suite.json",
                field=f"policy.{key}",
            )
    if not isinstance(policy.get("require_license", False), bool):
        raise HubError(
            "suite.json `policy.require_license` must be true or false",
            file="suite.json",
            field="policy.require_license",
        )
    if policy.get("decide_on", "interval") not in ("interval", "point"):
        raise HubError(
            f"suite.json `policy.decide_on` is `{policy['decide_on']}`; use interval (judge the 95% interval's "
            "bound) or point (judge the estimate)",
            file="suite.json",
            field="policy.decide_on",
        )
    retrieval = data.get("retrieval") or {}
    top_k = retrieval.get("top_k", data.get("top_k", 3))
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
        raise HubError("suite.json `top_k` must be an integer from 1 to 50", file="suite.json", field="top_k")
    return SuiteManifest(
        slug=str(data["slug"]),
        version=str(data["version"]),
        name=str(data.get("name") or data["slug"]),
        description=str(data.get("description", "")),
        role=role,
        tasks=list(tasks),
        retriever=str(retrieval.get("retriever", data.get("retriever", "bm25"))),
        top_k=top_k,
        system_instruction=str(data.get("system_instruction", "")),
        policy=dict(policy),
        general_suite=data.get("general_suite"),
        corpus=corpus,
        primary_metrics={
            **{t.name: KINDS[t.kind].metric for t in kinds},
            **dict(data.get("primary_metrics") or {}),
        },
        kinds=kinds,
    )


def shipped_suite_dirs() -> list[Path]:
    return sorted(p.parent for p in SHIPPED_DIR.glob("*/suite.json"))
