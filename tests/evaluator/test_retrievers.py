"""Both retrievers a suite may choose find the document that holds the answer."""

from __future__ import annotations

import json

import pytest

from evaluator.engine.retrievers import RETRIEVERS, load_corpus, make_retriever
from evaluator.suites_registry import SHIPPED_DIR

SUITE = SHIPPED_DIR / "acme-products"


def _questions(limit: int = 40) -> list[tuple[str, str]]:
    """(question, product) pairs from the held-out split."""
    facts = {f["id"]: f for f in map(json.loads, (SUITE / "facts.jsonl").read_text().splitlines())}
    rows = [json.loads(line) for line in (SUITE / "test.jsonl").read_text().splitlines()][:limit]
    return [(r["question"], facts[r["fact_id"]]["product"]) for r in rows]


@pytest.mark.parametrize("name", sorted(RETRIEVERS))
def test_retriever_finds_the_product_document(name):
    retriever = make_retriever(name, SUITE / "corpus.jsonl")
    questions = _questions()
    hits = sum(any(p.title == product for p in retriever.search(q, 5)) for q, product in questions)
    assert hits / len(questions) >= 0.8, f"{name}: recall@5 {hits}/{len(questions)}"


def test_unknown_retriever_is_named_in_the_error():
    with pytest.raises(ValueError, match="bm25, dense"):
        make_retriever("tfidf", SUITE / "corpus.jsonl")


def test_empty_corpus_is_refused(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no documents"):
        load_corpus(tmp_path / "corpus.jsonl")
