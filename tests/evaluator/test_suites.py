"""The evaluation suites shipped in evaluator/suites/: their files, data and lm-eval tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.engine import pefthub_tasks
from evaluator.suite_check import check_folder
from evaluator.suites_registry import lmeval_folder

SUITES_DIR = Path(__file__).resolve().parents[2] / "evaluator" / "suites"
ACME = SUITES_DIR / "acme-products"
GENERAL = SUITES_DIR / "general"
# a second domain, of another kind, written as data only (not installed by default)
VELMORA = SUITES_DIR.parents[1] / "examples" / "suites" / "velmora-harbour"
SUITES = [ACME, GENERAL, VELMORA]
ACCEPTANCE_KEYS = {"min_domain_score", "min_gain_over_base", "max_forgetting", "require_license"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def acme() -> dict[str, list[dict]]:
    return {name: read_jsonl(ACME / f"{name}.jsonl") for name in ("facts", "train", "test", "corpus")}


# --- suite.json ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_suite_json_is_complete_and_references_existing_files(suite):
    spec = json.loads((suite / "suite.json").read_text())
    manifest = check_folder(suite)  # every file checked as a registration checks it

    assert spec["slug"] == suite.name
    assert spec["name"] and spec["version"] and spec["description"] and spec["system_instruction"]
    assert spec["role"] in {"domain", "general"}
    assert {t["kind"] for t in spec["tasks"]} == {"multiple_choice", "short_answer"}
    assert manifest.primary_metrics == {
        t["name"]: {"multiple_choice": "acc", "short_answer": "answer_match"}[t["kind"]] for t in spec["tasks"]
    }
    assert set(spec["policy"]) <= ACCEPTANCE_KEYS
    assert 0 < spec["policy"]["max_forgetting"] < 1
    assert isinstance(spec["policy"]["require_license"], bool)
    if spec["role"] == "domain":
        assert set(spec["policy"]) == ACCEPTANCE_KEYS
        assert spec["policy"]["min_domain_score"] > 0 and spec["policy"]["min_gain_over_base"] > 0
        assert spec["retriever"] in {"bm25", "dense"}
        assert spec["top_k"] >= 1
        assert (suite / spec["corpus"]).is_file()
        assert (suite / spec["train"]).is_file()
        assert (SUITES_DIR / spec["general_suite"] / "suite.json").is_file()
    else:
        assert "corpus" not in spec, "a general suite has no retrieval arm"


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_shipped_suites_are_data_only(suite):
    # The hub supplies their lm-eval tasks and scoring code (evaluator/engine/pefthub_tasks.py).
    assert not list(suite.glob("*.yaml")) and not (suite / "utils.py").exists()


# --- the data --------------------------------------------------------------------------------------
def test_acme_sizes_and_ids(acme):
    assert len(acme["facts"]) == 100
    assert len(acme["train"]) == 200
    assert len(acme["test"]) == 100
    fact_ids = {f["id"] for f in acme["facts"]}
    assert len(fact_ids) == 100
    assert {t["fact_id"] for t in acme["test"]} == fact_ids
    per_fact = {}
    for row in acme["train"]:
        per_fact[row["fact_id"]] = per_fact.get(row["fact_id"], 0) + 1
    assert per_fact == dict.fromkeys(fact_ids, 2)
    for split in ("facts", "train", "test", "corpus"):
        ids = [row["id"] for row in acme[split]]
        assert len(ids) == len(set(ids)), split


def test_acme_test_questions_are_held_out_paraphrases(acme):
    train_questions = {row["question"].lower() for row in acme["train"]}
    for row in acme["test"]:
        assert row["question"].lower() not in train_questions, row
    per_fact = {}
    for row in acme["train"]:
        per_fact.setdefault(row["fact_id"], set()).add(row["question"])
    assert all(len(questions) == 2 for questions in per_fact.values())


def test_acme_answers_are_in_the_fact_and_in_its_product_document(acme):
    facts = {f["id"]: f for f in acme["facts"]}
    docs = {d["title"]: d["text"] for d in acme["corpus"]}
    for row in acme["test"] + acme["train"]:
        fact = facts[row["fact_id"]]
        assert row["answer"] == fact["value"]
        assert fact["value"] in fact["statement"]
        assert fact["value"] in docs[fact["product"]], (fact, docs[fact["product"]])
        assert fact["product"] in row["question"]


def test_acme_choices_hold_the_answer_at_label_and_same_attribute_distractors(acme):
    facts = {f["id"]: f for f in acme["facts"]}
    values_of = {}
    for f in acme["facts"]:
        values_of.setdefault(f["attribute"], set()).add(f["value"])
    labels = set()
    for row in acme["test"]:
        choices = row["choices"]
        assert len(choices) == 4 and len(set(choices)) == 4
        assert choices[row["label"]] == row["answer"]
        assert set(choices) <= values_of[facts[row["fact_id"]]["attribute"]]
        labels.add(row["label"])
    assert labels == {0, 1, 2, 3}


def test_general_data():
    rows = read_jsonl(GENERAL / "test.jsonl")
    assert 90 <= len(rows) <= 120
    assert len({r["question"] for r in rows}) == len(rows)
    for row in rows:
        assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
        assert row["choices"][row["label"]] == row["answer"]
        assert row["prefix"] and row["answer"] not in row["prefix"], row
    assert {r["category"] for r in rows} >= {"capital", "arithmetic", "everyday"}


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_build_script_regenerates_the_committed_files_byte_for_byte(suite, tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(suite / "build_data.py"), "--out", str(out)], check=True)
    written = sorted(p.name for p in out.iterdir())
    assert written
    for name in written:
        assert (out / name).read_bytes() == (suite / name).read_bytes(), name


# --- answer matching for generated answers -----------------------------------------------------
@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("The Widget Pro costs 42 dollars.", "42 dollars"),
        ("The Widget Pro costs forty-two dollars.", "42 dollars"),
        ("It costs $42.", "42 dollars"),
        ("It sells for $641.00 at Acme.", "$641"),
        ("Six hundred and forty-one dollars.", "$641"),
        ("It is listed as AC9467 in the catalogue.", "AC-9467"),
        ("It was released in 2001.", "2001"),
        ("It comes with a seven-year warranty.", "7 years"),
        ("It weighs 2,830 g.", "2830 grams"),
        ("The lamp is made of Smoked Walnut!", "smoked walnut"),
        ("Designed by ilse marrow", "Ilse Marrow"),
        ("A spider has eight legs.", "8"),
        ("A spider has 8 legs.", "eight"),
        ("Water boils at 100°C (212°F).", "100 degrees Celsius"),
        ("The closest star is the Sun.", "the Sun"),
    ],
)
def test_answer_match_accepts_the_answer_inside_a_sentence(response, answer):
    assert pefthub_tasks.answer_match(response, answer)


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("The Widget Pro costs 43 dollars.", "42 dollars"),
        ("The Widget Pro costs 142 dollars.", "42 dollars"),
        ("It is 17.", "7"),
        ("It is made of walnut.", "smoked walnut"),
        ("It was released in 2010.", "2001"),
        ("I don't know.", "AC-9467"),
        ("Anything", ""),
    ],
)
def test_answer_match_rejects_other_answers(response, answer):
    assert not pefthub_tasks.answer_match(response, answer)


def test_process_results_gives_the_answer_match_metric():
    utils = pefthub_tasks
    doc = {"answer": "$641"}
    assert utils.process_results(doc, ["The kettle costs $641."]) == {"answer_match": 1.0}
    assert utils.process_results(doc, ["The kettle costs $640."]) == {"answer_match": 0.0}


# --- lm-eval ---------------------------------------------------------------------------------------
def test_lm_eval_loads_every_task_from_the_suite_folder_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # data paths must not depend on the working directory
    from lm_eval.tasks import TaskManager

    expected = {}
    for suite in SUITES:
        spec = json.loads((suite / "suite.json").read_text())
        expected.update(dict.fromkeys([t["name"] for t in spec["tasks"]], len(read_jsonl(suite / "test.jsonl"))))
    folders = [str(lmeval_folder(s, root=tmp_path / "generated")) for s in SUITES]
    manager = TaskManager(include_path=folders)
    tasks = manager.load(sorted(expected))["tasks"]

    assert set(tasks) == set(expected)
    for name, task in tasks.items():
        docs = task.test_docs()
        assert len(docs) == expected[name], name
        assert "question" in docs[0] and "answer" in docs[0]


@pytest.mark.slow
def test_simple_evaluate_on_the_real_base_model(installed, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = json.loads((ACME / "suite.json").read_text())
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={installed.path},dtype=float32",
        tasks=["acme_mc", "acme_qa", "general_mc"],
        task_manager=TaskManager(include_path=[str(lmeval_folder(s, root=tmp_path / "generated")) for s in SUITES]),
        apply_chat_template=True,
        system_instruction=spec["system_instruction"],
        device="cpu",
        batch_size=4,
        limit=4,
        log_samples=True,
    )

    scores = results["results"]
    assert {"acc,none", "acc_norm,none", "acc_stderr,none"} <= set(scores["acme_mc"])
    assert "answer_match,none" in scores["acme_qa"]
    assert 0.0 <= scores["acme_qa"]["answer_match,none"] <= 1.0
    assert "acc,none" in scores["general_mc"]
    sample = results["samples"]["acme_qa"][0]
    assert sample["filtered_resps"][0].strip(), "the model generated an answer"
    assert spec["system_instruction"] in str(sample["arguments"]), "the suite prompt reached the model"
