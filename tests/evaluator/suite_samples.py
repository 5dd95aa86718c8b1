"""A suite written only as suite.json + JSONL (no YAML, no Python), in another domain
than the shipped product catalogue: the rules of a fictional board game."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

RULES = [
    ("How many tiles does each player draw at the start of Quarrow?", "seven", ["five", "seven", "nine", "twelve"], 1),
    ("Which piece may jump over a wall in Quarrow?", "the heron", ["the heron", "the ox", "the mason", "the lamp"], 0),
    ("What colour are the harbour spaces on a Quarrow board?", "teal", ["amber", "grey", "teal", "violet"], 2),
    ("How many points is a completed bridge worth in Quarrow?", "4", ["1", "2", "3", "4"], 3),
    ("Who moves first in a game of Quarrow?", "the youngest player", ["the dealer", "the youngest player"], 1),
    ("What ends a game of Quarrow?", "the third flood", ["the third flood", "an empty bag", "a full board"], 0),
]


def write_suite(folder: Path, *, slug: str = "quarrow-rules", version: str = "1.0.0", **changes) -> Path:
    """The suite's files in ``folder``; ``changes`` override suite.json keys."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "slug": slug,
        "version": version,
        "name": "Quarrow rules",
        "role": "domain",
        "description": "The rules of Quarrow, a board game invented for this test.",
        "system_instruction": "Answer the question in one short sentence.",
        "general_suite": "general",
        "tasks": [
            {"name": "quarrow_mc", "kind": "multiple_choice"},
            {"name": "quarrow_qa", "kind": "short_answer", "max_new_tokens": 16, "stop": ["\n"]},
        ],
        "policy": {"max_forgetting": 1.0, "require_license": False},
        **changes,
    }
    (folder / "suite.json").write_text(json.dumps(manifest, indent=2))
    rows = [
        {"id": f"q{i}", "question": q, "answer": a, "choices": c, "label": label}
        for i, (q, a, c, label) in enumerate(RULES, start=1)
    ]
    corpus = [
        {"id": f"r{i}", "title": f"Rule {i}", "text": f"{q.removesuffix('?')}: {a}."}
        for i, (q, a, _, _) in enumerate(RULES, start=1)
    ]
    train = [{"question": q.replace("How many", "How much"), "answer": a} for q, a, _, _ in RULES]
    facts = [{"id": f"f{i}", "statement": f"{q.removesuffix('?')}: {a}."} for i, (q, a, _, _) in enumerate(RULES, 1)]
    for name, data in (("test", rows), ("corpus", corpus), ("train", train), ("facts", facts)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    return folder


def tar_of(folder: Path, *, top: str | None = None, extra: dict[str, bytes] | None = None) -> io.BytesIO:
    """A tar.gz of the folder's files (under ``top/`` when given), plus ``extra`` members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=f"{top}/{path.name}" if top else path.name)
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    buffer.name = "suite.tar.gz"
    return buffer
