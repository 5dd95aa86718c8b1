"""Seeded paraphrase augmentation of a domain suite's training split.

Fine-tuning injects a fact only when the model sees it asked many ways, so each fact becomes
``per_fact`` distinct (question, answer) pairs: the suite's own training questions, question
templates for the fact's relation, cloze questions made from the fact's statement, and
generic templates. Answers alternate between short sentences and the bare value (the bare
value is what multiple-choice scoring measures). Nothing reproduces a held-out question.

Any domain: a fact is ``{id, subject, relation, value, statement}`` (``product`` and
``attribute``, or ``kind``, are read as subject and relation). Relations the hand-written
templates know (prices, years, materials...) use them; any other relation borrows the
suite's own phrasings from its sibling facts: a training question of another fact with the
same relation, its subject replaced by this fact's.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .templates import CLOZE_WORDS, GENERIC_ANSWERS, GENERIC_QUESTIONS, TEMPLATES

# used only when a suite's suite.json names no system_instruction
DEFAULT_SYSTEM_INSTRUCTION = "Answer the question in one short sentence."


@dataclass(frozen=True)
class Fact:
    id: str
    subject: str  # what the fact is about: a product, a term, a situation...
    relation: str  # what it says of it: "price", "release_year", "term", "authority"...
    value: str
    statement: str


@dataclass(frozen=True)
class QAPair:
    fact_id: str
    question: str
    answer: str


@dataclass
class Suite:
    """A domain suite folder: facts, training and held-out questions, corpus, instruction."""

    path: Path
    facts: list[Fact]
    train: list[dict[str, Any]]
    test: list[dict[str, Any]] = field(default_factory=list)
    corpus: list[dict[str, Any]] = field(default_factory=list)
    system_instruction: str = DEFAULT_SYSTEM_INSTRUCTION
    top_k: int = 3  # passages the evaluator's RAG arm retrieves


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_suite(suite_dir: Path | str) -> Suite:
    """Read a suite folder; ``test.jsonl``, ``corpus.jsonl`` and ``suite.json`` are optional."""
    root = Path(suite_dir)
    for required in ("facts.jsonl", "train.jsonl"):
        if not (root / required).is_file():
            raise FileNotFoundError(f"{root / required} is missing: a suite needs facts.jsonl and train.jsonl")
    facts = [_fact(row, line) for line, row in enumerate(read_jsonl(root / "facts.jsonl"), 1)]
    optional = {
        name: read_jsonl(root / f"{name}.jsonl") for name in ("test", "corpus") if (root / f"{name}.jsonl").is_file()
    }
    meta = json.loads((root / "suite.json").read_text()) if (root / "suite.json").is_file() else {}
    return Suite(
        path=root,
        facts=facts,
        train=read_jsonl(root / "train.jsonl"),
        test=optional.get("test", []),
        corpus=optional.get("corpus", []),
        system_instruction=meta.get("system_instruction") or DEFAULT_SYSTEM_INSTRUCTION,
        top_k=int((meta.get("retrieval") or {}).get("top_k", meta.get("top_k", 3))),
    )


def _fact(row: dict[str, Any], line: int) -> Fact:
    subject = row.get("subject", row.get("product"))
    relation = row.get("relation", row.get("attribute", row.get("kind", "")))
    given = {"id": row.get("id"), "subject": subject, "value": row.get("value"), "statement": row.get("statement")}
    missing = [name for name, v in given.items() if v is None or not str(v).strip()]  # a value may be 0
    if missing:
        raise ValueError(
            f"facts.jsonl line {line}: {', '.join(missing)} missing; a fact needs id, subject (or product), "
            "value and statement, and may name its relation (or attribute, or kind)"
        )
    return Fact(str(row["id"]), str(subject).strip(), str(relation), str(row["value"]), str(row["statement"]))


def normalize(text: str) -> str:
    """Lowercase, accents and punctuation stripped, whitespace collapsed (for matching)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text.lower())  # keep decimal points only
    return " ".join(re.sub(r"[^a-z0-9$%.]+", " ", text).split())


_SUFFIXES = ("", "s", "e", "es", "d", "ed", "r", "er", "ers", "or", "ors", "ing", "ion", "tion")


def _names(relation: str, stems: Sequence[str]) -> bool:
    """Whether a relation is named by one of ``stems``: a word of it is a stem plus a plain
    suffix ("designer", "release_year"), or it holds a multi-word stem ("made_of");
    "authority" is not "author"."""
    key = relation.lower().replace(" ", "_").replace("-", "_")
    words = key.split("_")
    return any(
        (stem in key) if "_" in stem else any(w.startswith(stem) and w[len(stem) :] in _SUFFIXES for w in words)
        for stem in stems
    )


def _templates_for(relation: str) -> tuple[list[str], list[str]]:
    for words, questions, answers in TEMPLATES:
        if _names(relation, words):
            return questions, answers
    return [], []


def _fill(template: str, fact: Fact) -> str:
    subject = fact.subject
    if not re.match(r"(the|a|an)\s", subject, flags=re.IGNORECASE):
        subject = f"the {subject}"
    words = fact.relation.replace("_", " ").replace("-", " ").strip().lower()
    text = template.format(p=subject, P=subject[0].upper() + subject[1:], v=fact.value, a=words)
    return text[0].upper() + text[1:]


def _swap(text: str, old: str, new: str) -> str | None:
    """``text`` with ``old`` (whole words, any case) replaced by ``new``; None without it."""
    pattern = re.compile(rf"(?<!\w){re.escape(old)}(?!\w)", flags=re.IGNORECASE)
    return pattern.sub(lambda _: new, text) if pattern.search(text) else None


def _sibling_questions(fact: Fact, siblings: Sequence[tuple[Fact, str]]) -> list[str]:
    """The suite's training questions of other facts with the same relation, asked of this
    fact: their subject replaced by this one's (questions that name their own value, or
    whose subject this fact's subject contains, are left out)."""
    questions = []
    for other, question in siblings:
        if other.id == fact.id or _contains_value(question, other.value):
            continue
        if normalize(other.subject) in normalize(fact.subject):
            continue
        asked = _swap(question, other.subject, fact.subject)
        if asked:
            questions.append(asked)
    return list(dict.fromkeys(questions))


def _cloze_questions(fact: Fact) -> list[str]:
    """Questions made from the statement: the value replaced by a question word or a blank."""
    statement = fact.statement.strip()
    found = re.search(re.escape(fact.value), statement, flags=re.IGNORECASE)
    if not found:
        return []
    head, tail = statement[: found.start()], statement[found.end() :].rstrip(" .")
    word = next((w for keys, w in CLOZE_WORDS if _names(fact.relation, keys)), "what")
    wh_head = re.sub(r"\b(the|a|an)\s+$", "", head, flags=re.IGNORECASE)  # "from the which" -> "from which"
    return [f"{wh_head}{word}{tail}?", f"Fill in the blank: {head}___{tail}."]


def _contains_value(answer: str, value: str) -> bool:
    return normalize(value) in normalize(answer)


def fact_answers(fact: Fact) -> tuple[list[str], str]:
    """Sentence answers (statement first), then the bare value; each contains the value."""
    _, templates = _templates_for(fact.relation)
    # a relation without hand templates answers in the suite's own sentence: "The term of the
    # skarn is..." would teach the model clumsy English
    sentences = [fact.statement.strip(), *(_fill(t, fact) for t in templates)]
    unique = list(dict.fromkeys(s for s in sentences if _contains_value(s, fact.value)))
    if not unique:  # the statement does not quote the value
        unique = [s for s in (_fill(t, fact) for t in GENERIC_ANSWERS) if _contains_value(s, fact.value)]
    return unique or [f"{_fill('{P}', fact)}: {fact.value}."], fact.value


def augment(
    facts: Sequence[Fact],
    train: Iterable[dict[str, Any]],
    *,
    per_fact: int = 10,
    seed: int = 0,
    exclude_questions: Iterable[str] = (),
    bare_every: int = 4,
) -> list[QAPair]:
    """``per_fact`` distinct pairs per fact (fewer only if the templates run out).

    The suite's own training questions come first; questions in ``exclude_questions``
    (compared normalised) are never produced. Every ``bare_every``-th pair answers with
    the bare value, the others with a short sentence. Deterministic for a given ``seed``.
    """
    excluded = {normalize(q) for q in exclude_questions}
    by_fact: dict[str, list[dict[str, Any]]] = {}
    for row in train:
        by_fact.setdefault(str(row["fact_id"]), []).append(row)
    fact_by_id = {f.id: f for f in facts}
    by_relation: dict[str, list[tuple[Fact, str]]] = {}
    for fact_id, rows in by_fact.items():
        if fact_id in fact_by_id:
            fact = fact_by_id[fact_id]
            by_relation.setdefault(fact.relation, []).extend((fact, str(r["question"]).strip()) for r in rows)
    pairs: list[QAPair] = []
    for fact in facts:
        rng = random.Random(f"{seed}:{fact.id}")
        sentences, bare = fact_answers(fact)
        sentences = sentences[:1] + rng.sample(sentences[1:], len(sentences) - 1)
        specific, _ = _templates_for(fact.relation)
        pool = (
            [_fill(q, fact) for q in specific]
            if specific
            else _sibling_questions(fact, by_relation.get(fact.relation, []))
        )
        pool += _cloze_questions(fact)
        rng.shuffle(pool)
        generic = [_fill(q, fact) for q in GENERIC_QUESTIONS] if specific else []  # see fact_answers
        rng.shuffle(generic)
        own = by_fact.get(fact.id, [])
        questions = [str(r["question"]).strip() for r in own] + pool + generic
        own_answers = {
            normalize(str(r["question"])): str(r["answer"]).strip()
            for r in own
            if _contains_value(str(r["answer"]), fact.value)
        }
        seen_questions: set[str] = set()
        kept: list[str] = []
        for question in questions:
            key = normalize(question)
            if key and key not in excluded and key not in seen_questions:
                seen_questions.add(key)
                kept.append(question)
        answers = [*sentences, bare]
        chosen: list[QAPair] = []
        seen_pairs: set[tuple[str, str]] = set()
        # First pass: one pair per question; later passes reuse questions with another answer form.
        for round_ in range(len(answers)):
            for i, question in enumerate(kept):
                if len(chosen) >= per_fact:
                    break
                slot = i + round_ * (bare_every - 1)
                if round_ == 0 and normalize(question) in own_answers:
                    answer = own_answers[normalize(question)]
                elif bare_every and slot % bare_every == bare_every - 1:
                    answer = bare
                else:
                    answer = sentences[(i + round_) % len(sentences)]
                if (normalize(question), normalize(answer)) not in seen_pairs:
                    seen_pairs.add((normalize(question), normalize(answer)))
                    chosen.append(QAPair(fact.id, question, answer))
        pairs.extend(chosen)
    return pairs


def suite_fraction(suite: Suite, fraction: float, *, seed: int = 0) -> Suite:
    """The suite restricted to ``fraction`` of its facts (at least one), drawn by ``seed``,
    with only those facts' training questions: the points of a score-against-training-data
    curve. Held-out questions and the corpus stay whole, so every fraction is scored alike.
    The draws nest: a smaller fraction's facts are a subset of a larger one's (same seed)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"train fraction {fraction:g} must be in (0, 1]: the share of the training facts to use")
    if fraction == 1:
        return suite
    order = sorted(suite.facts, key=lambda f: f.id)
    random.Random(f"fraction:{seed}").shuffle(order)
    keep = {f.id for f in order[: max(1, round(len(order) * fraction))]}
    return replace(
        suite,
        facts=[f for f in suite.facts if f.id in keep],
        train=[row for row in suite.train if str(row["fact_id"]) in keep],
    )


def augment_suite(suite: Suite, *, per_fact: int = 10, seed: int = 0) -> list[QAPair]:
    """``augment`` on a loaded suite, excluding every held-out question it ships."""
    return augment(
        suite.facts,
        suite.train,
        per_fact=per_fact,
        seed=seed,
        exclude_questions=[str(row["question"]) for row in suite.test],
    )
