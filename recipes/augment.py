"""Seeded paraphrase augmentation of a domain suite's training split.

Fine-tuning injects a fact only when the model sees it asked many ways, so each fact becomes
``per_fact`` distinct (question, answer) pairs: the suite's own training questions, question
templates for the fact's attribute, cloze questions made from the fact's statement, and
generic templates. Answers alternate between short sentences and the bare value (the bare
value is what multiple-choice scoring measures). Nothing reproduces a held-out question.
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

DEFAULT_SYSTEM_INSTRUCTION = "Answer the question about Acme products in one short sentence."


@dataclass(frozen=True)
class Fact:
    id: str
    product: str
    attribute: str
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
    facts = [
        Fact(str(r["id"]), r["product"], r["attribute"], str(r["value"]), r["statement"])
        for r in read_jsonl(root / "facts.jsonl")
    ]
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


def normalize(text: str) -> str:
    """Lowercase, accents and punctuation stripped, whitespace collapsed (for matching)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text.lower())  # keep decimal points only
    return " ".join(re.sub(r"[^a-z0-9$%.]+", " ", text).split())


# --- templates ---------------------------------------------------------------------------------
# {p}: "the <product>", {P}: the same capitalised, {v}: the value, {a}: the attribute in words.
# Keyed by words that may appear in an attribute name; the first key that matches wins.
_TEMPLATES: list[tuple[tuple[str, ...], list[str], list[str]]] = [
    (
        ("price", "cost", "msrp"),
        [
            "How much does {p} cost?",
            "What is the price of {p}?",
            "{P} is sold for how much?",
            "What does {p} sell for?",
            "How much would I pay for {p}?",
            "What's the retail price of {p}?",
            "How expensive is {p}?",
            "What is {p}'s price?",
            "Tell me the cost of {p}.",
            "What price is {p} listed at?",
        ],
        ["{P} costs {v}.", "The price of {p} is {v}.", "{P} sells for {v}."],
    ),
    (
        ("year", "release", "launch", "introduc"),
        [
            "When was {p} released?",
            "In what year was {p} launched?",
            "What year did {p} come out?",
            "Which year was {p} introduced?",
            "{P} was released in which year?",
            "What is the release year of {p}?",
            "When did {p} hit the market?",
            "What year was {p} launched in?",
        ],
        ["{P} was released in {v}.", "{P} came out in {v}.", "{P} was launched in {v}."],
    ),
    (
        ("colour", "color", "finish"),
        [
            "What colour is {p}?",
            "What color is {p}?",
            "Which color does {p} come in?",
            "{P} comes in what color?",
            "What is the color of {p}?",
            "What colour does {p} have?",
            "Tell me the colour of {p}.",
            "What is {p}'s colour?",
            "In which colour is {p} sold?",
        ],
        ["{P} comes in {v}.", "The color of {p} is {v}.", "{P} is sold in {v}."],
    ),
    (
        ("material", "made_of", "fabric"),
        [
            "What is {p} made of?",
            "What material is {p} made from?",
            "{P} is built from what material?",
            "Which material is used for {p}?",
            "What is {p} constructed from?",
            "What material does {p} use?",
            "Tell me what {p} is made of.",
            "From what material is {p} made?",
        ],
        ["{P} is made of {v}.", "The material of {p} is {v}.", "{P} is built from {v}."],
    ),
    (
        ("warranty", "guarantee"),
        [
            "How long is the warranty on {p}?",
            "What warranty comes with {p}?",
            "How long is {p} under warranty?",
            "What is the warranty period of {p}?",
            "{P} has what warranty?",
            "How long does {p}'s warranty last?",
            "Tell me the warranty length for {p}.",
            "What is the length of the warranty for {p}?",
        ],
        ["{P} has a warranty of {v}.", "The warranty on {p} lasts {v}."],
    ),
    (
        ("weight", "mass"),
        [
            "How much does {p} weigh?",
            "What is the weight of {p}?",
            "How heavy is {p}?",
            "{P} weighs how much?",
            "What does {p} weigh?",
            "Tell me the weight of {p}.",
            "What is {p}'s weight?",
        ],
        ["{P} weighs {v}.", "The weight of {p} is {v}."],
    ),
    (
        ("battery", "runtime", "charge"),
        [
            "How long does the battery of {p} last?",
            "What is the battery life of {p}?",
            "How long does {p} run on one charge?",
            "{P}'s battery lasts how long?",
            "What battery life does {p} have?",
            "Tell me the battery life of {p}.",
        ],
        ["The battery of {p} lasts {v}.", "{P} has a battery life of {v}."],
    ),
    (
        ("design", "invent", "creat", "engineer", "author", "founder", "lead"),
        [
            "Who designed {p}?",
            "Who is the designer of {p}?",
            "{P} was designed by whom?",
            "Who created {p}?",
            "Which person designed {p}?",
            "Who was the designer behind {p}?",
            "Tell me who designed {p}.",
            "Who came up with the design of {p}?",
        ],
        ["{P} was designed by {v}.", "The designer of {p} is {v}.", "{P} was created by {v}."],
    ),
    (
        ("warehouse", "depot", "ships_from", "shipping"),
        [
            "Which warehouse ships {p}?",
            "Where does {p} ship from?",
            "From what warehouse does {p} ship?",
            "Which warehouse sends out {p}?",
            "Where is {p} shipped from?",
            "What warehouse handles orders of {p}?",
            "{P} ships from which warehouse?",
            "Tell me which warehouse ships {p}.",
            "Which Acme warehouse does {p} come from?",
        ],
        [
            "{P} ships from the {v} warehouse.",
            "{P} is shipped from the {v} warehouse.",
            "{P} comes from the {v} warehouse.",
        ],
    ),
    (
        ("code", "sku", "model_number", "part_number"),
        [
            "What is {p}'s product code?",
            "Which code does {p} have?",
            "What code is {p} listed under?",
            "Tell me the product code of {p}.",
            "What is the SKU of {p}?",
            "{P} has which product code?",
            "What catalogue number does {p} have?",
            "Which product code belongs to {p}?",
        ],
        ["{P} has the product code {v}.", "The product code of {p} is {v}.", "{P} is listed as {v}."],
    ),
    (
        ("city", "country", "origin", "factory", "manufactur", "made_in", "location", "plant", "where"),
        [
            "Where is {p} made?",
            "Where is {p} manufactured?",
            "In which place is {p} produced?",
            "{P} is made where?",
            "Where does {p} come from?",
            "Where is {p} built?",
            "Where is {p} produced?",
            "Tell me where {p} is manufactured.",
            "In what location is {p} made?",
        ],
        ["{P} is made in {v}.", "{P} is manufactured in {v}.", "{P} is produced in {v}."],
    ),
]
_GENERIC_QUESTIONS = [
    "What is the {a} of {p}?",
    "What {a} does {p} have?",
    "Tell me the {a} of {p}.",
    "{P}: what is its {a}?",
    "Which {a} does {p} have?",
    "Do you know the {a} of {p}?",
    "What's {p}'s {a}?",
    "What about the {a} of {p}?",
]
_GENERIC_ANSWERS = ["The {a} of {p} is {v}.", "{P} has a {a} of {v}."]


_CLOZE_WORDS = [
    (("design", "invent", "creat", "author", "founder"), "whom"),
    (("year",), "which year"),
    (("warehouse",), "which"),
]


def _templates_for(attribute: str) -> tuple[list[str], list[str]]:
    key = attribute.lower().replace(" ", "_").replace("-", "_")
    for words, questions, answers in _TEMPLATES:
        if any(word in key for word in words):
            return questions, answers
    return [], []


def _fill(template: str, fact: Fact) -> str:
    product = fact.product.strip()
    subject = product if product.lower().startswith("the ") else f"the {product}"
    words = fact.attribute.replace("_", " ").replace("-", " ").strip().lower()
    text = template.format(p=subject, P=subject[0].upper() + subject[1:], v=fact.value, a=words)
    return text[0].upper() + text[1:]


def _cloze_questions(fact: Fact) -> list[str]:
    """Questions made from the statement: the value replaced by a question word or a blank."""
    statement = fact.statement.strip()
    found = re.search(re.escape(fact.value), statement, flags=re.IGNORECASE)
    if not found:
        return []
    head, tail = statement[: found.start()], statement[found.end() :].rstrip(" .")
    attribute = fact.attribute.lower()
    word = next((w for keys, w in _CLOZE_WORDS if any(k in attribute for k in keys)), "what")
    wh_head = re.sub(r"\b(the|a|an)\s+$", "", head, flags=re.IGNORECASE)  # "from the which" -> "from which"
    return [f"{wh_head}{word}{tail}?", f"Fill in the blank: {head}___{tail}."]


def _contains_value(answer: str, value: str) -> bool:
    return normalize(value) in normalize(answer)


def fact_answers(fact: Fact) -> tuple[list[str], str]:
    """Sentence answers (statement first), then the bare value; each contains the value."""
    _, templates = _templates_for(fact.attribute)
    sentences = [fact.statement.strip(), *(_fill(t, fact) for t in templates or _GENERIC_ANSWERS)]
    unique = list(dict.fromkeys(s for s in sentences if _contains_value(s, fact.value)))
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
    pairs: list[QAPair] = []
    for fact in facts:
        rng = random.Random(f"{seed}:{fact.id}")
        sentences, bare = fact_answers(fact)
        sentences = sentences[:1] + rng.sample(sentences[1:], len(sentences) - 1)
        specific, _ = _templates_for(fact.attribute)
        pool = [_fill(q, fact) for q in specific] + _cloze_questions(fact)
        rng.shuffle(pool)
        generic = [_fill(q, fact) for q in _GENERIC_QUESTIONS]
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
