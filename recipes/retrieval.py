"""BM25 over a suite's corpus and the RAFT-style contexts built from it for training.

Training prompts must look like the evaluator's RAG arm: both build them with
``evaluator.engine.passages`` (one ``Passage``, one ``RAG_TEMPLATE``),
whole documents rendered ``title: text`` as a bulleted list inside ``RAG_TEMPLATE``, found
by ``bm25s`` with English stopwords. ``bm25s`` is used when installed, otherwise a small
pure-Python Okapi BM25 with the same tokenisation. Long documents can be split into
sentence-aligned passages (``max_chars``), since training cost grows with the prompt.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from evaluator.engine.passages import RAG_TEMPLATE, Passage, question_with_passages

from .augment import Fact, normalize

__all__ = [
    "BM25",
    "RAG_TEMPLATE",
    "Passage",
    "gold_passage",
    "question_with_passages",
    "raft_passages",
    "split_passages",
]

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "does",
        "do",
        "did",
    ]
)


def split_passages(corpus: Sequence[dict[str, Any]], max_chars: int | None = None) -> list[Passage]:
    """Each document as one passage, or cut at sentence ends into ~``max_chars`` pieces."""
    passages: list[Passage] = []
    for doc in corpus:
        if max_chars is None:
            passages.append(Passage(str(doc["id"]), str(doc.get("title", "")), str(doc.get("text", "")).strip()))
            continue
        sentences = re.split(r"(?<=[.!?])\s+", str(doc.get("text", "")).strip())
        chunk = ""
        for sentence in sentences:
            if chunk and len(chunk) + 1 + len(sentence) > max_chars:
                passages.append(Passage(str(doc["id"]), str(doc.get("title", "")), chunk))
                chunk = sentence
            else:
                chunk = f"{chunk} {sentence}".strip()
        if chunk:
            passages.append(Passage(str(doc["id"]), str(doc.get("title", "")), chunk))
    return passages


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


class BM25:
    """Okapi BM25 (k1=1.5, b=0.75) over passages; ``search`` returns passage indices."""

    def __init__(self, passages: Sequence[Passage], *, use_bm25s: bool = True) -> None:
        self.passages = list(passages)
        texts = [p.render() for p in self.passages]
        self._bm25s: Any = None
        if use_bm25s:
            try:
                import bm25s
            except ImportError:
                bm25s = None
            if bm25s is not None:
                self._tokenize = lambda text: bm25s.tokenize(
                    [text], stopwords="en", return_ids=False, show_progress=False
                )[0]
                self._bm25s = bm25s.BM25(k1=1.5, b=0.75)
                self._bm25s.index([self._tokenize(t) or ["empty"] for t in texts], show_progress=False)
                return
        self._tokenize = tokenize
        self._docs = [Counter(tokenize(t)) for t in texts]
        self._lengths = [sum(d.values()) for d in self._docs]
        self._avg = sum(self._lengths) / max(len(self._docs), 1)
        df = Counter(term for doc in self._docs for term in doc)
        n = len(self._docs)
        self._idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    @property
    def backend(self) -> str:
        return "bm25s" if self._bm25s is not None else "python"

    def search(self, query: str, k: int) -> list[int]:
        k = min(k, len(self.passages))
        if k <= 0:
            return []
        terms = self._tokenize(query)
        if self._bm25s is not None:
            if not terms:
                return list(range(k))
            ids, _ = self._bm25s.retrieve([terms], k=k, show_progress=False)
            return [int(i) for i in ids[0]]
        scores = []
        for i, doc in enumerate(self._docs):
            norm = 1.5 * (1 - 0.75 + 0.75 * self._lengths[i] / (self._avg or 1))
            score = sum(self._idf[t] * doc[t] * 2.5 / (doc[t] + norm) for t in terms if t in doc)
            scores.append((-score, i))
        return [i for _, i in sorted(scores)[:k]]


def gold_passage(index: BM25, fact: Fact) -> int | None:
    """The passage that states the fact: it names the value, best match for the statement."""
    value = normalize(fact.value)
    candidates = [i for i, p in enumerate(index.passages) if value and value in normalize(p.render())]
    if not candidates:
        return None
    ranked = index.search(fact.statement, k=len(index.passages))
    rank = {i: r for r, i in enumerate(ranked)}
    return min(candidates, key=lambda i: rank.get(i, len(ranked)))


def raft_passages(
    index: BM25,
    question: str,
    gold: int | None,
    *,
    k: int = 3,
    p_gold: float = 0.8,
    rng: random.Random,
) -> list[Passage]:
    """RAFT context: with probability ``p_gold`` the gold passage plus the best-ranked
    distractors, otherwise distractors only (so the adapter also learns to answer from
    memory when retrieval misses), in shuffled order."""
    with_gold = gold is not None and rng.random() < p_gold
    ranked = [i for i in index.search(question, k=k + 1) if i != gold]
    chosen = ([gold] if with_gold and gold is not None else []) + ranked
    chosen = chosen[:k]
    rng.shuffle(chosen)
    return [index.passages[i] for i in chosen]
