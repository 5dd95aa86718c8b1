"""Check a whole suite folder before anything of it is stored: ``suite.json``, then every
JSONL file line by line, then (for suites that bring their own lm-eval YAMLs) that each
task is defined. Every refusal names the file, the line and the field, and says what to
write instead.

The files, for suites with built-in task kinds:

- ``test.jsonl``: ``{"question", "choices", "label"}`` for ``multiple_choice`` tasks,
  ``{"question", "answer"}`` for ``short_answer`` tasks (one file serves both), and an
  optional ``prefix``, the opening words of the reply, on every row or none;
- ``corpus.jsonl``: ``{"id", "title"?, "text"}``, the retrieval documents (domain suites);
- ``train.jsonl`` (optional): ``{"question", "answer"}``, for training recipes;
- ``facts.jsonl`` (optional): ``{"statement"}``, one fact per line, for training recipes.

Extra fields are kept and ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hub.exceptions import HubError

from .suite_kinds import TEST_FILE, check_rows
from .suites_registry import SuiteManifest, read_manifest

MAX_ROWS = 100_000
# Fields every row of a file must have as non-empty strings.
REQUIRED = {"corpus.jsonl": ("id", "text"), "train.jsonl": ("question", "answer"), "facts.jsonl": ("statement",)}


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` per line; a bad line is refused with its number."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HubError(f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8", file=name) from None
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            if number == text.count("\n") + 1:
                continue  # the newline that ends the last line
            raise HubError(f"{name} line {number} is empty; remove it (one JSON object per line)", file=name)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HubError(
                f"{name} line {number} is not valid JSON: {exc.msg} (column {exc.colno})", file=name
            ) from None
        if not isinstance(row, dict):
            raise HubError(f"{name} line {number} must be a JSON object {{...}}, not {type(row).__name__}", file=name)
        rows.append((number, row))
        if len(rows) > MAX_ROWS:
            raise HubError(
                f"{name} has more than {MAX_ROWS} lines; a suite is for evaluation, keep it smaller", file=name
            )
    if not rows:
        raise HubError(f"{name} is empty; it needs one JSON object per line", file=name)
    return rows


def _check_fields(name: str, rows: list[tuple[int, dict[str, Any]]], fields: tuple[str, ...]) -> None:
    for number, row in rows:
        for key in fields:
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                raise HubError(f"{name} line {number}: `{key}` must be a non-empty string", file=name, field=key)


def _unique_ids(name: str, rows: list[tuple[int, dict[str, Any]]]) -> None:
    seen: dict[str, int] = {}
    for number, row in rows:
        if "id" in row:
            key = str(row["id"])
            if key in seen:
                raise HubError(
                    f"{name} line {number}: id `{key}` is also on line {seen[key]}; ids must be unique", file=name
                )
            seen[key] = number


class _IgnoreTags(yaml.SafeLoader):
    """Reads lm-eval YAML without running its ``!function`` tags."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def _yaml_tasks(folder: Path) -> dict[str, str]:
    """Task name -> the YAML file that defines it; a YAML that does not parse is refused."""
    tasks = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            config = yaml.load(path.read_text(encoding="utf-8"), Loader=_IgnoreTags)
        except yaml.YAMLError as exc:
            raise HubError(f"{path.name} is not valid YAML: {exc}", file=path.name) from None
        if isinstance(config, dict) and isinstance(config.get("task"), str):
            tasks[config["task"]] = path.name
    return tasks


def check_folder(folder: Path) -> SuiteManifest:
    """The suite's manifest, once every file of the suite has been checked."""
    from .engine.retrievers import RETRIEVERS

    manifest = read_manifest(folder)
    if manifest.corpus and manifest.retriever not in RETRIEVERS:
        raise HubError(
            f"suite.json `retriever` is `{manifest.retriever}`; use one of {', '.join(sorted(RETRIEVERS))}",
            file="suite.json",
            field="retriever",
        )
    if manifest.kinds:
        if not (folder / TEST_FILE).is_file():
            raise HubError(f"the suite has built-in tasks but no {TEST_FILE}: add the questions", file=TEST_FILE)
        rows = read_jsonl(folder / TEST_FILE)
        check_rows(manifest.kinds, rows)
        _unique_ids(TEST_FILE, rows)
    else:
        defined = _yaml_tasks(folder)
        missing = [t for t in manifest.tasks if t not in defined]
        if missing:
            raise HubError(
                f"suite.json lists task `{missing[0]}`, but no YAML in the suite defines it (`task: {missing[0]}`); "
                'write its YAML, or make it a built-in task: {"name": ..., "kind": "multiple_choice"}',
                file="suite.json",
                field="tasks",
            )
    for name, fields in REQUIRED.items():
        path = folder / (manifest.corpus if name == "corpus.jsonl" and manifest.corpus else name)
        if path.is_file():
            rows = read_jsonl(path)
            _check_fields(path.name, rows, fields)
            _unique_ids(path.name, rows)
    return manifest
