"""A retrieved passage and the RAG prompt built from passages: one definition, shared by the
evaluator's RAG arm and the training recipes (whose prompts must look the same).

Pure Python, no imports beyond the standard library, so ``recipes`` can use it without
pulling in the evaluator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RAG_TEMPLATE = "Use these documents to answer.\n\n{passages}\n\nQuestion: {question}"


@dataclass(frozen=True)
class Passage:
    """A piece of a corpus document: ``id`` is the document's id (several passages may share it)."""

    id: str
    title: str
    text: str

    def render(self) -> str:
        return f"{self.title}: {self.text}" if self.title else self.text


def question_with_passages(question: str, passages: Sequence[Passage]) -> str:
    """The user turn of a retrieval-augmented prompt; the question alone without passages."""
    if not passages:
        return question
    return RAG_TEMPLATE.format(passages="\n".join(f"- {p.render()}" for p in passages), question=question)
