"""The example suite written as data only (examples/suites/velmora-harbour): a second domain,
of another kind than the shipped product catalogue, for checking training recipes on. Its
suite.json and the build script's output are checked with the shipped suites' (test_suites.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VELMORA = ROOT / "examples" / "suites" / "velmora-harbour"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (VELMORA / f"{name}.jsonl").read_text().splitlines()]


def test_four_kinds_of_facts_each_asked_once_in_words_training_never_uses():
    facts, train, test = _rows("facts"), _rows("train"), _rows("test")
    assert Counter(f["kind"] for f in facts) == {"term": 20, "procedure": 20, "authority": 20, "limit": 20}
    assert Counter(t["fact_id"] for t in train) == {f["id"]: 2 for f in facts}
    assert [t["fact_id"] for t in test] == [f["id"] for f in facts]
    assert not {t["question"] for t in test} & {t["question"] for t in train}


@pytest.mark.parametrize("kind", ["term", "procedure", "authority", "limit"])
def test_choices_hold_the_answer_at_label_and_distractors_of_the_same_kind(kind):
    facts = {f["id"]: f for f in _rows("facts")}
    values = {f["value"] for f in facts.values() if f["kind"] == kind}
    for row in _rows("test"):
        if facts[row["fact_id"]]["kind"] != kind:
            continue
        assert row["choices"][row["label"]] == row["answer"] == facts[row["fact_id"]]["value"]
        assert len(set(row["choices"])) == 4 and set(row["choices"]) <= values


def test_every_answer_is_on_exactly_one_handbook_page():
    pages = [doc["text"] for doc in _rows("corpus")]
    for fact in _rows("facts"):
        holding = [text for text in pages if fact["subject"] in text and fact["value"] in text]
        assert len(holding) == 1, fact
