"""Built-in task kinds: a suite names ``multiple_choice`` and ``short_answer`` tasks in
``suite.json`` and the hub writes their lm-eval task YAMLs and scoring code.

A suite then holds data only (``suite.json`` + ``test.jsonl``, ``corpus.jsonl``, ...).
For a run, :func:`lmeval_folder` writes the generated folder (one YAML per task, the
evaluator's one copy of :mod:`evaluator.engine.pefthub_tasks`, and ``test.jsonl``) under a
name that is the hash of its content, so the same suite and hub code always give the same
folder, and ``lm_eval --include_path <folder>`` runs exactly what the hub runs.

Everything generated is part of the suite's content hash (:func:`evaluator.suites_registry.suite_hash`):
a change of scoring code makes new arm runs instead of reusing runs scored the old way.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.exceptions import HubError

HELPERS = Path(__file__).resolve().parent / "engine" / "pefthub_tasks.py"
HELPERS_MODULE = "pefthub_tasks"
TEST_FILE = "test.jsonl"


@dataclass(frozen=True)
class TaskSpec:
    """One ``tasks`` entry of suite.json: ``{"name", "kind", ...options}``."""

    name: str
    kind: str
    version: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


def _refuse(message: str, where: str) -> HubError:
    return HubError(message, file="suite.json", field=where)


class TaskKind(abc.ABC):
    """How one kind of task asks its questions and scores the answers."""

    name: str
    metric: str  # the primary metric the policy judges
    options: dict[str, str] = {}  # option -> what it means (for error messages)

    def parse_options(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        unknown = sorted(set(raw) - set(self.options))
        if unknown:
            allowed = ", ".join(f"`{o}`" for o in self.options) or "none"
            raise _refuse(f"{where}: `{unknown[0]}` is not an option of kind {self.name}; allowed: {allowed}", where)
        return dict(raw)

    @abc.abstractmethod
    def check_row(self, row: dict[str, Any], where: str) -> None:
        """Refuse a ``test.jsonl`` row this kind cannot ask (``where``: ``test.jsonl line N``)."""

    @abc.abstractmethod
    def config(self, task: TaskSpec) -> dict[str, Any]:
        """The kind's lm-eval task keys (data, prompt and metric keys are added around them)."""

    functions: dict[str, str] = {}  # lm-eval key -> helper function (``!function``)


def _need_text(row: dict[str, Any], key: str, where: str) -> None:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise HubError(f"{where}: `{key}` must be a non-empty string", file=TEST_FILE, field=key)


class MultipleChoice(TaskKind):
    """The log-likelihood of each choice as the start of the answer; ``acc`` and ``acc_norm``."""

    name = "multiple_choice"
    metric = "acc"

    def check_row(self, row: dict[str, Any], where: str) -> None:
        choices = row.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise HubError(f"{where}: `choices` must be a list of at least 2 strings", file=TEST_FILE, field="choices")
        if not all(isinstance(c, str) and c.strip() for c in choices):
            raise HubError(f"{where}: every choice must be a non-empty string", file=TEST_FILE, field="choices")
        label = row.get("label")
        if not isinstance(label, int) or isinstance(label, bool):
            raise HubError(
                f"{where}: `label` must be the index of the right choice (an integer from 0)",
                file=TEST_FILE,
                field="label",
            )
        if not 0 <= label < len(choices):
            raise HubError(
                f"{where}: `label` is {label}, but there are {len(choices)} choices (0 to {len(choices) - 1})",
                file=TEST_FILE,
                field="label",
            )

    def config(self, task: TaskSpec) -> dict[str, Any]:
        return {
            "output_type": "multiple_choice",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "label",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        }


class ShortAnswer(TaskKind):
    """Greedy generation, scored by ``answer_match``: the normalised ``answer`` found as
    whole tokens inside the response (``$42`` = ``forty-two dollars``)."""

    name = "short_answer"
    metric = "answer_match"
    options = {
        "max_new_tokens": "tokens the model may generate (1 to 1024; default 64)",
        "stop": 'strings that end the answer (default ["\\n\\n"])',
    }
    functions = {"process_results": "process_results"}

    def parse_options(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        options = super().parse_options(raw, where)
        tokens = options.get("max_new_tokens", 64)
        if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= 1024:
            raise _refuse(f"{where}.max_new_tokens must be an integer from 1 to 1024", f"{where}.max_new_tokens")
        stop = options.get("stop", ["\n\n"])
        if not isinstance(stop, list) or not stop or not all(isinstance(s, str) and s for s in stop):
            raise _refuse(f'{where}.stop must be a list of non-empty strings, e.g. ["\\n"]', f"{where}.stop")
        return {"max_new_tokens": tokens, "stop": stop}

    def check_row(self, row: dict[str, Any], where: str) -> None:
        _need_text(row, "answer", where)

    def config(self, task: TaskSpec) -> dict[str, Any]:
        return {
            "output_type": "generate_until",
            "doc_to_target": "answer",
            "generation_kwargs": {
                "until": list(task.options["stop"]),
                "max_gen_toks": task.options["max_new_tokens"],
                "do_sample": False,
                "temperature": 0.0,
            },
            "metric_list": [{"metric": "answer_match", "aggregation": "mean", "higher_is_better": True}],
        }


KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (MultipleChoice(), ShortAnswer())}


def parse_task(entry: Any, index: int) -> TaskSpec:
    """One ``tasks`` entry, checked; every refusal names the entry and what to write."""
    where = f"tasks[{index}]"
    if not isinstance(entry, dict):
        raise _refuse(f'{where} must be an object like {{"name": "my_mc", "kind": "multiple_choice"}}', where)
    name = entry.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum() or not name[:1].isalpha():
        raise _refuse(
            f"{where}.name must be a task name of letters, digits, `_` and `-` starting with a letter, e.g. acme_mc",
            f"{where}.name",
        )
    kind_name = entry.get("kind")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise _refuse(
            f"{where}.kind is {kind_name!r}; use one of: {', '.join(KINDS)} "
            "(or write the lm-eval YAML yourself and list the task by name)",
            f"{where}.kind",
        )
    version = entry.get("version", 1.0)
    if not isinstance(version, (int, float)) or isinstance(version, bool):
        raise _refuse(f"{where}.version must be a number (the task's lm-eval metadata version)", f"{where}.version")
    options = {k: v for k, v in entry.items() if k not in ("name", "kind", "version")}
    return TaskSpec(name=name, kind=kind.name, version=float(version), options=kind.parse_options(options, where))


def check_rows(tasks: tuple[TaskSpec, ...], rows: list[tuple[int, dict[str, Any]]]) -> None:
    """Every ``test.jsonl`` row against every task's kind; ``prefix`` on all rows or none."""
    with_prefix = 0
    for line, row in rows:
        where = f"{TEST_FILE} line {line}"
        _need_text(row, "question", where)
        if "prefix" in row:
            _need_text(row, "prefix", where)
            with_prefix += 1
        for task in tasks:
            KINDS[task.kind].check_row(row, where)
    if 0 < with_prefix < len(rows):
        raise HubError(
            f"{TEST_FILE}: {with_prefix} of {len(rows)} rows have a `prefix`; give every row one or none",
            file=TEST_FILE,
            field="prefix",
        )


class _Dumper(yaml.SafeDumper):
    """Strings with a line break as double-quoted ``"\\n\\n"``, not a folded block."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style='"' if any(c in value for c in "\n\r\t") else None
    ),
)


def _task_yaml(task: TaskSpec, *, slug: str, prefix: bool) -> str:
    kind = KINDS[task.kind]
    data = {
        "task": task.name,
        "tag": "pefthub_" + slug.replace("-", "_"),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": TEST_FILE}},
        "test_split": "test",
        "doc_to_text": "{{question}}",
        # The opening words of the reply, given as the start of the assistant turn.
        **({"gen_prefix": "{{prefix}}"} if prefix else {}),
        **kind.config(task),
        "metadata": {"version": task.version},
    }
    functions = {"custom_dataset": "load_local_json", **kind.functions}
    lines = [f"# Generated by pefthub from suite.json (kind {task.kind}); the hub rewrites it, do not edit."]
    lines.append(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000).rstrip("\n"))
    lines += [f"{key}: !function {HELPERS_MODULE}.{func}" for key, func in functions.items()]
    return "\n".join(lines) + "\n"


def lmeval_files(folder: Path, *, slug: str, tasks: tuple[TaskSpec, ...]) -> dict[str, bytes]:
    """The generated lm-eval folder of a suite with built-in tasks: name -> content."""
    test = (folder / TEST_FILE).read_bytes()
    first = test.split(b"\n", 1)[0].strip()
    prefix = bool(first) and "prefix" in json.loads(first)  # every row has one or none (check_rows)
    files = {f"{t.name}.yaml": _task_yaml(t, slug=slug, prefix=prefix).encode() for t in tasks}
    files[f"{HELPERS_MODULE}.py"] = HELPERS.read_bytes()
    files[TEST_FILE] = test
    return files


def files_digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def write_folder(files: dict[str, bytes], root: Path) -> Path:
    """Write ``files`` to ``root/<their digest>`` once (atomically: a folder is either whole
    or absent, even with two workers writing it at the same time)."""
    target = root / files_digest(files)
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{target.name}.{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        for name, content in files.items():
            (partial / name).write_bytes(content)
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
