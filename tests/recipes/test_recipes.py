"""The training recipe: paraphrase augmentation, chat-formatted examples, RAFT contexts, and
(slow) a few real training steps of each method on SmolLM2."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from recipes.augment import augment, augment_suite, load_suite, normalize
from recipes.retrieval import BM25, gold_passage, question_with_passages, raft_passages, split_passages

FACTS = [
    ("f1", "Acme Widget", "price", "$149", "The Acme Widget costs $149."),
    ("f2", "Acme Widget", "release_year", "2019", "The Acme Widget was released in 2019."),
    ("f3", "Acme Gizmo", "color", "teal", "The Acme Gizmo comes in teal."),
    ("f4", "Acme Gizmo", "battery_cells", "six cells", "The Acme Gizmo has a battery cells count of six cells."),
]
# Held-out questions; the first two are exactly what the templates would otherwise produce.
LEAKY = ["What is the price of the Acme Widget?", "what year did the Acme Widget come out"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def write_suite(root: Path, *, with_test: bool = True) -> Path:
    def dump(name: str, rows: list[dict]) -> None:
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    root.mkdir(parents=True, exist_ok=True)
    dump(
        "facts.jsonl", [dict(zip(("id", "product", "attribute", "value", "statement"), f, strict=True)) for f in FACTS]
    )
    dump(
        "train.jsonl",
        [
            {"id": f"{f[0]}-{i}", "fact_id": f[0], "question": q.format(p=f[1]), "answer": f[4]}
            for f in FACTS
            for i, q in enumerate(("Tell me about the {p}, please?", "Give me the details of the {p}?"))
        ],
    )
    if with_test:
        test = [*LEAKY, "Which hue is the Acme Gizmo?", "How many cells power the Acme Gizmo?"]
        dump(
            "test.jsonl",
            [
                {"id": f"t{i}", "fact_id": f[0], "question": q, "answer": f[3], "choices": [f[3], "x"], "label": 0}
                for i, (q, f) in enumerate(zip(test, FACTS, strict=True))
            ],
        )
    dump(
        "corpus.jsonl",
        [
            {"id": "d1", "title": "Acme Widget", "text": f"{FACTS[0][4]} {FACTS[1][4]} It is blue."},
            {"id": "d2", "title": "Acme Gizmo", "text": f"{FACTS[2][4]} {FACTS[3][4]}"},
            {"id": "d3", "title": "Acme Doohickey", "text": "The Acme Doohickey costs $12. It was released in 2021."},
            {"id": "d4", "title": "Returns", "text": "Acme accepts returns within 30 days of purchase."},
        ],
    )
    (root / "suite.json").write_text(json.dumps({"system_instruction": "Answer briefly."}))
    return root


@pytest.fixture
def suite_dir(tmp_path) -> Path:
    return write_suite(tmp_path / "suite")


@pytest.fixture(scope="module")
def byte_tokenizer():
    """A byte-level tokenizer with ChatML special tokens: chat formatting without a model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    tokenizer.add_tokens(["<|im_start|>", "<|im_end|>"], special_tokens=True)
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# --- augmentation -------------------------------------------------------------------------------
def test_augmentation_is_deterministic_per_seed(suite_dir):
    suite = load_suite(suite_dir)
    first = augment_suite(suite, per_fact=8, seed=3)
    assert first == augment_suite(load_suite(suite_dir), per_fact=8, seed=3)
    assert first != augment_suite(suite, per_fact=8, seed=4)


@pytest.mark.parametrize("per_fact", [4, 10])
def test_each_fact_gets_per_fact_distinct_pairs(suite_dir, per_fact):
    pairs = augment_suite(load_suite(suite_dir), per_fact=per_fact, seed=0)
    assert Counter(p.fact_id for p in pairs) == {f[0]: per_fact for f in FACTS}
    keys = [(normalize(p.question), normalize(p.answer)) for p in pairs]
    assert len(set(keys)) == len(keys)
    # Many phrasings, not one question repeated with different answers.
    for fact_id in ("f1", "f4"):
        questions = {normalize(p.question) for p in pairs if p.fact_id == fact_id}
        assert len(questions) >= min(per_fact, 8)


def test_training_questions_come_first(suite_dir):
    pairs = augment_suite(load_suite(suite_dir), per_fact=6, seed=0)
    widget = [p for p in pairs if p.fact_id == "f1"]
    assert [p.question for p in widget[:2]] == [
        "Tell me about the Acme Widget, please?",
        "Give me the details of the Acme Widget?",
    ]
    assert widget[0].answer == "The Acme Widget costs $149."


def test_held_out_questions_are_never_produced(suite_dir):
    suite = load_suite(suite_dir)
    held_out = {normalize(str(r["question"])) for r in suite.test}
    produced = {normalize(p.question) for p in augment_suite(suite, per_fact=12, seed=0)}
    assert not produced & held_out
    # Without the test split the same templates do produce them: the exclusion is what works.
    unguarded = {normalize(p.question) for p in augment(suite.facts, suite.train, per_fact=12, seed=0)}
    assert {normalize(q) for q in LEAKY} <= unguarded


def test_suite_without_test_split_still_augments(tmp_path):
    suite = load_suite(write_suite(tmp_path / "s", with_test=False))
    assert suite.test == []
    assert suite.system_instruction == "Answer briefly."
    assert len(augment_suite(suite, per_fact=5)) == 5 * len(FACTS)


def test_answers_state_the_fact_value_as_sentence_and_bare(suite_dir):
    pairs = augment_suite(load_suite(suite_dir), per_fact=10, seed=0)
    values = {f[0]: f[3] for f in FACTS}
    for pair in pairs:
        assert normalize(values[pair.fact_id]) in normalize(pair.answer), pair
    for fact_id, value in values.items():
        answers = {p.answer for p in pairs if p.fact_id == fact_id}
        assert value in answers  # the bare value (what multiple choice scores)
        assert any(len(a) > len(value) + 10 and a.endswith(".") for a in answers)  # full sentences


def test_attribute_templates_fit_the_attribute(suite_dir):
    pairs = augment_suite(load_suite(suite_dir), per_fact=12, seed=0)
    price_questions = " ".join(p.question.lower() for p in pairs if p.fact_id == "f1")
    assert "cost" in price_questions and "price" in price_questions
    generic = " ".join(p.question.lower() for p in pairs if p.fact_id == "f4")
    assert "battery cells" in generic  # unknown attribute: generic templates with its words


def test_missing_required_file_names_it(tmp_path):
    (tmp_path / "facts.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"train\.jsonl"):
        load_suite(tmp_path)


def _relation_suite(root: Path) -> Path:
    """A suite of another kind than products: facts as subject/kind, no hand templates."""
    facts = [
        ("r1", "skarn", "term", "a stern anchor", "At Velmora, a skarn is a stern anchor."),
        ("r2", "wexline", "term", "a bow line", "At Velmora, a wexline is a bow line."),
        (
            "r3",
            "a night mooring permit",
            "authority",
            "the Tidewarden",
            "A night mooring permit is granted by the Tidewarden.",
        ),
        (
            "r4",
            "a dredging permit",
            "authority",
            "the Harbour Board",
            "A dredging permit is granted by the Harbour Board.",
        ),
    ]
    asked = {
        "term": ["In harbour talk, what is a {s}?", "What do sailors mean by a {s}?"],
        "authority": ["Who grants {s}?", "Which office gives {s}?"],
    }
    root.mkdir(parents=True)
    keys = ("id", "subject", "kind", "value", "statement")
    (root / "facts.jsonl").write_text("".join(json.dumps(dict(zip(keys, f, strict=True))) + "\n" for f in facts))
    train = [  # each fact is asked one of its relation's phrasings: the other comes from its sibling
        {"fact_id": f[0], "question": asked[f[2]][i % 2].format(s=f[1]), "answer": f[3]} for i, f in enumerate(facts)
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    held_out = [{"fact_id": "r1", "question": "What do sailors mean by a skarn?", "answer": "a stern anchor"}]
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out))
    return root


def test_any_relation_borrows_its_sibling_facts_phrasings(tmp_path):
    suite = load_suite(_relation_suite(tmp_path / "harbour"))
    assert [(f.subject, f.relation) for f in suite.facts][:1] == [("skarn", "term")]
    pairs = augment_suite(suite, per_fact=6, seed=0)
    questions = {fact.id: {p.question for p in pairs if p.fact_id == fact.id} for fact in suite.facts}
    assert "What do sailors mean by a wexline?" in questions["r2"]  # its own phrasing
    assert "In harbour talk, what is a wexline?" in questions["r2"]  # borrowed from the skarn
    assert "Which office gives a night mooring permit?" in questions["r3"]  # borrowed, article kept
    assert "What do sailors mean by a skarn?" not in questions["r1"]  # held out: never produced
    assert not any("skarn" in q for q in questions["r2"] | questions["r3"] | questions["r4"])
    for pair in pairs:
        fact = next(f for f in suite.facts if f.id == pair.fact_id)
        assert normalize(fact.value) in normalize(pair.answer), pair
        # no hand template fits: the sentences are the suite's own, not "The term of the skarn is ..."
        assert pair.answer in (fact.value, fact.statement), pair
        assert " term " not in f" {pair.question.lower()} " and "authority" not in pair.question.lower(), pair


def test_relation_names_match_whole_words():
    from recipes.augment import _names

    assert _names("designer", ("design",)) and _names("release_year", ("release",))
    assert _names("made_of", ("made_of",)) and _names("Lead Designer", ("lead",))
    assert not _names("authority", ("author",))  # a harbour office is not an author
    assert not _names("codename", ("code",))


def test_a_fact_without_a_subject_says_what_to_fix(tmp_path):
    write_suite(tmp_path)
    (tmp_path / "facts.jsonl").write_text(json.dumps({"id": "x", "value": "1", "statement": "It is 1."}) + "\n")
    with pytest.raises(
        ValueError, match=r"facts\.jsonl line 1: subject missing; a fact needs id, subject \(or product\)"
    ):
        load_suite(tmp_path)


def test_a_fact_whose_value_is_zero_is_kept_and_a_blank_statement_is_refused(tmp_path):
    write_suite(tmp_path)
    row = {"id": "z", "subject": "the night speed limit", "relation": "limit", "value": 0}
    (tmp_path / "facts.jsonl").write_text(json.dumps({**row, "statement": "The night speed limit is 0 knots."}) + "\n")
    [fact] = load_suite(tmp_path).facts
    assert (fact.subject, fact.relation, fact.value) == ("the night speed limit", "limit", "0")
    (tmp_path / "facts.jsonl").write_text(json.dumps({**row, "statement": "  "}) + "\n")
    with pytest.raises(ValueError, match=r"facts\.jsonl line 1: statement missing"):
        load_suite(tmp_path)


def test_the_second_domain_suite_augments_without_its_held_out_questions():
    root = Path(__file__).resolve().parents[2] / "examples" / "suites" / "velmora-harbour"
    suite = load_suite(root)
    pairs = augment_suite(suite, per_fact=3, seed=0)
    assert Counter(p.fact_id for p in pairs) == {f.id: 3 for f in suite.facts}
    held_out = {normalize(str(row["question"])) for row in suite.test}
    assert held_out and not held_out & {normalize(p.question) for p in pairs}
    own = {normalize(str(row["question"])) for row in suite.train}
    assert sum(normalize(p.question) not in own for p in pairs) == len(suite.facts)  # one new phrasing each


# --- chat formatting and RAFT contexts ------------------------------------------------------------
def test_training_example_masks_everything_but_the_answer(suite_dir, byte_tokenizer):
    from recipes.examples import IGNORE, build_examples, chat_example

    ids, labels = chat_example(byte_tokenizer, "Answer briefly.", "How much is it?", "It costs $5.")
    text = byte_tokenizer.decode(ids)
    assert text == (
        "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nHow much is it?<|im_end|>\n"
        "<|im_start|>assistant\nIt costs $5.<|im_end|>\n"
    )
    kept = [t for t in labels if t != IGNORE]
    assert byte_tokenizer.decode(kept) == "It costs $5.<|im_end|>\n"
    assert labels[-len(kept) :] == ids[-len(kept) :]  # the answer is the suffix, all of it labelled

    examples = build_examples(load_suite(suite_dir), byte_tokenizer, per_fact=3, seed=0, with_passages=False)
    assert len(examples) == 3 * len(FACTS)
    prompt = byte_tokenizer.decode(examples[0][0])
    assert prompt.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\n")


def test_raft_examples_carry_retrieved_passages(suite_dir, byte_tokenizer):
    from recipes.examples import IGNORE, build_examples

    examples = build_examples(load_suite(suite_dir), byte_tokenizer, per_fact=4, seed=0, with_passages=True)
    prompts = [
        byte_tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE])
        for ids, labels in examples
    ]
    assert all("Use these documents to answer.\n\n- " in p and "\n\nQuestion: " in p for p in prompts)
    answers = [byte_tokenizer.decode([t for t in labels if t != IGNORE]) for _, labels in examples]
    assert not any("documents" in a for a in answers)


@pytest.mark.parametrize("use_bm25s", [True, False])
def test_bm25_finds_the_document_that_states_the_fact(suite_dir, use_bm25s):
    if use_bm25s:
        pytest.importorskip("bm25s")
    suite = load_suite(suite_dir)
    index = BM25(split_passages(suite.corpus), use_bm25s=use_bm25s)
    assert index.backend == ("bm25s" if use_bm25s else "python")
    top = index.passages[index.search("What colour is the Acme Gizmo?", k=1)[0]]
    assert top.id == "d2"
    assert index.passages[gold_passage(index, suite.facts[0])].id == "d1"


def test_raft_context_holds_gold_about_eighty_percent_of_the_time(suite_dir):
    suite = load_suite(suite_dir)
    index = BM25(split_passages(suite.corpus), use_bm25s=False)
    gold = gold_passage(index, suite.facts[0])
    rng = random.Random(0)
    contexts = [raft_passages(index, "How much is the Acme Widget?", gold, k=3, rng=rng) for _ in range(400)]
    assert all(len(c) == 3 and len({p.render() for p in c}) == 3 for c in contexts)
    with_gold = sum(index.passages[gold] in c for c in contexts) / len(contexts)
    assert 0.72 < with_gold < 0.88
    prompt = question_with_passages("Q?", contexts[0])
    assert prompt.startswith("Use these documents to answer.\n\n- ") and prompt.endswith("\n\nQuestion: Q?")


def test_raft_prompts_match_the_evaluator_rag_arm():
    """The prompt the evaluator's RAG arm writes is the one the recipe trains on."""
    from types import SimpleNamespace

    wrappers = pytest.importorskip("evaluator.engine.wrappers", exc_type=ImportError)
    from recipes.retrieval import Passage

    passages = [Passage("d1", "Acme Widget", "The Acme Widget costs $25."), Passage("d2", "", "Returns: 30 days.")]

    class Fixed:
        def search(self, query, k):
            return passages[:k]

    rag = wrappers.RagLM(SimpleNamespace(), Fixed(), k=2)
    request = SimpleNamespace(
        doc={"question": "What does it cost?"}, task_name="t", doc_id=0, args=("<s>user\nWhat does it cost?</s>",)
    )
    context = rag._augment(request).arguments[0]
    assert context == f"<s>user\n{question_with_passages('What does it cost?', passages)}</s>"
    assert rag.retrieved[("t", 0)] == ["d1", "d2"]


def test_long_documents_are_split_at_sentence_ends():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    passages = split_passages([{"id": "d", "title": "T", "text": text}], max_chars=100)
    assert len(passages) > 5
    assert all(len(p.text) <= 100 and p.text.endswith(".") for p in passages)
    assert " ".join(p.text for p in passages) == text


# --- the training loop on the tiny chat Llama of tests/conftest.py (fast) -------------------------
@pytest.mark.parametrize("method", ["lora", "prompt_tuning", "raft_lora"])
def test_training_loop_saves_a_loadable_adapter_with_its_card(tiny_chat_dir, suite_dir, tmp_path, method):
    from recipes.train import train_adapter

    lines: list[str] = []
    report = train_adapter(
        base_path=tiny_chat_dir,
        suite_dir=suite_dir,
        method=method,
        out_dir=tmp_path / "out",
        epochs=3,
        per_fact=2,
        batch_size=4,
        replay=0,
        log=lines.append,
    )
    assert report.steps == 3 * 2 and report.num_examples == 2 * len(FACTS)
    assert sum(line.startswith("epoch ") and "examples/s" in line for line in lines) == 3
    assert report.epoch_losses[-1] < report.epoch_losses[0]
    metadata = json.loads((tmp_path / "out" / "training_metadata.json").read_text())
    assert metadata["final_loss"] == report.final_loss and metadata["recipe"]["steps"] == 6
    assert _loss_on_training_examples(tiny_chat_dir, suite_dir, method, tmp_path / "out") < (
        _loss_on_training_examples(tiny_chat_dir, suite_dir, method, None)
    )


def test_max_steps_stops_early_and_unknown_methods_are_refused(tiny_chat_dir, suite_dir, tmp_path):
    from recipes.train import train_adapter

    report = train_adapter(
        base_path=tiny_chat_dir, suite_dir=suite_dir, method="lora", out_dir=tmp_path / "a", max_steps=2, log=str
    )
    assert report.steps == 2
    with pytest.raises(ValueError, match="unknown method 'ia3'"):
        train_adapter(base_path=tiny_chat_dir, suite_dir=suite_dir, method="ia3", out_dir=tmp_path / "b")


# --- replay: the base's own answers to general questions ------------------------------------------
GENERAL_TEST = Path(__file__).resolve().parents[2] / "evaluator" / "suites" / "general" / "test.jsonl"


def test_replay_questions_are_seeded_distinct_and_never_general_test_questions():
    from recipes.replay import replay_questions

    questions = replay_questions(500, seed=0)
    assert questions == replay_questions(500, seed=0) and questions != replay_questions(500, seed=1)
    assert len(questions) == len({normalize(q) for q in questions}) >= 100
    assert replay_questions(40, seed=0) == replay_questions(40, seed=0) and len(replay_questions(40)) == 40
    test = {normalize(json.loads(line)["question"]) for line in GENERAL_TEST.read_text().splitlines() if line}
    assert len(test) == 100
    assert not {normalize(q) for q in questions} & test  # training on them would leak the forgetting test


def test_replay_pairs_keep_finished_answers_only(byte_tokenizer, monkeypatch):
    from recipes import check, replay

    answers = {"Q1?": "Paris is the capital.\n\nMore text", "Q2?": "x" * 60, "Q3?": "  "}
    monkeypatch.setattr(check, "generate_answers", lambda model, tok, system, qs, **kw: [answers[q] for q in qs])

    class Model:
        training = True

        def eval(self):
            self.training = False

        def train(self, mode=True):
            self.training = mode

    model = Model()
    pairs = replay.replay_pairs(model, byte_tokenizer, "sys", ["Q1?", "Q2?", "Q3?"], max_new_tokens=48)
    assert pairs == [("Q1?", "Paris is the capital.")]  # cut at a blank line; ran-out and empty answers dropped
    assert model.training  # put back in training mode


def test_training_mixes_in_replay_examples(tiny_chat_dir, suite_dir, tmp_path, monkeypatch):
    from recipes import replay
    from recipes.train import train_adapter

    asked: list[list[str]] = []

    def fake_pairs(model, tokenizer, system, questions, **_):
        asked.append(list(questions))
        return [(q, "An answer.") for q in questions]

    monkeypatch.setattr(replay, "replay_pairs", fake_pairs)
    report = train_adapter(
        base_path=tiny_chat_dir,
        suite_dir=suite_dir,
        method="lora",
        out_dir=tmp_path / "out",
        epochs=1,
        per_fact=2,
        batch_size=4,
        replay=6,
        replay_loss="ce",
        log=str,
    )
    assert asked == [replay.replay_questions(6, seed=0)]
    assert report.num_examples == 2 * len(FACTS) + 6 and report.steps == 4
    metadata = json.loads((tmp_path / "out" / "training_metadata.json").read_text())
    assert metadata["recipe"]["replay_examples"] == 6


def test_kl_replay_distils_the_base_on_its_own_batches(tiny_chat_dir, suite_dir, tmp_path, monkeypatch):
    from recipes import replay
    from recipes.train import train_adapter

    monkeypatch.setattr(
        replay, "replay_pairs", lambda model, tokenizer, system, questions, **_: [(q, "An answer.") for q in questions]
    )
    report = train_adapter(
        base_path=tiny_chat_dir,
        suite_dir=suite_dir,
        method="lora",
        out_dir=tmp_path / "out",
        epochs=1,
        per_fact=2,
        batch_size=4,
        replay=6,  # the lora default distils them (replay_loss="kl")
        distill_weight=2.0,
        log=str,
    )
    # The replay questions are not training examples: one step per domain batch, each with a replay batch.
    assert report.num_examples == 2 * len(FACTS) and report.steps == 2
    recipe = json.loads((tmp_path / "out" / "training_metadata.json").read_text())["recipe"]
    assert (recipe["replay_examples"], recipe["replay_loss"], recipe["distill_weight"]) == (6, "kl", 2.0)
    with pytest.raises(ValueError, match="unknown replay loss 'mse'"):
        train_adapter(
            base_path=tiny_chat_dir, suite_dir=suite_dir, method="lora", out_dir=tmp_path / "b", replay_loss="mse"
        )


def test_distill_loss_is_zero_until_the_adapter_moves_the_model(tiny_chat_dir, byte_tokenizer):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from recipes.examples import batches, chat_example, distill_loss

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_chat_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    rows = [chat_example(byte_tokenizer, "sys", q, a) for q, a in [("Hi?", "Hello."), ("A longer question?", "Yes.")]]
    ids, mask, *_ = next(batches(rows, 2, None, byte_tokenizer.pad_token_id))
    assert distill_loss(model, ids, mask).item() == pytest.approx(0.0, abs=1e-6)  # B = 0: the base itself
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    moved = distill_loss(model, ids, mask)
    assert moved.item() > 1e-3 and moved.requires_grad


# --- training on a share of the facts (--train-fraction) --------------------------------------------
def _big_suite(n: int = 100):
    from recipes.augment import Fact, Suite

    facts = [Fact(f"f{i:03}", f"Acme Thing {i}", "price", f"${i}", f"The Acme Thing {i} costs ${i}.") for i in range(n)]
    train = [{"fact_id": f.id, "question": f"Price of {f.subject}?", "answer": f.value} for f in facts for _ in "ab"]
    test = [{"fact_id": f.id, "question": f"How much is {f.subject}?", "answer": f.value} for f in facts]
    return Suite(path=Path("big"), facts=facts, train=train, test=test, corpus=[{"id": "d1", "text": "x"}])


def test_train_fraction_keeps_that_share_of_facts_with_their_questions_only():
    from recipes.augment import suite_fraction

    suite = _big_suite()
    for fraction, facts in ((0.25, 25), (0.5, 50), (0.01, 1), (0.001, 1)):
        part = suite_fraction(suite, fraction, seed=0)
        kept = {f.id for f in part.facts}
        assert len(kept) == facts
        assert {r["fact_id"] for r in part.train} == kept and len(part.train) == 2 * facts
        assert part.test == suite.test and part.corpus == suite.corpus  # scored on the whole suite
    assert suite_fraction(suite, 1.0, seed=0) is suite
    assert len(suite.facts) == 100  # the loaded suite is left as it was


def test_train_fraction_is_deterministic_per_seed_and_nested():
    from recipes.augment import suite_fraction

    suite = _big_suite()

    def ids(fraction: float, seed: int) -> set[str]:
        return {f.id for f in suite_fraction(suite, fraction, seed=seed).facts}

    assert ids(0.25, 0) == ids(0.25, 0)
    assert ids(0.25, 0) != ids(0.25, 1)
    assert ids(0.25, 0) < ids(0.5, 0) < ids(1.0, 0)  # the 25% run's facts are all in the 50% run's
    assert ids(0.25, 0) != {f"f{i:03}" for i in range(25)}  # drawn, not the first quarter


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_train_fraction_outside_zero_one_is_refused(fraction, capsys):
    from recipes.augment import suite_fraction
    from recipes.train import main

    with pytest.raises(ValueError, match=f"train fraction {fraction:g} must be in \\(0, 1\\]"):
        suite_fraction(_big_suite(), fraction)
    with pytest.raises(SystemExit):
        main(["--suite", "s", "--out", "o", "--train-fraction", str(fraction)])
    assert "is not in (0, 1]" in capsys.readouterr().err


def test_training_on_half_the_facts_trains_their_examples_and_says_so(tiny_chat_dir, suite_dir, tmp_path):
    from recipes.train import train_adapter

    report = train_adapter(
        base_path=tiny_chat_dir,
        suite_dir=suite_dir,
        method="lora",
        out_dir=tmp_path / "out",
        epochs=1,
        per_fact=2,
        batch_size=4,
        replay=0,
        train_fraction=0.5,
        log=str,
    )
    assert report.num_examples == 2 * 2  # 2 of the 4 facts, 2 pairs each
    recipe = json.loads((tmp_path / "out" / "training_metadata.json").read_text())["recipe"]
    assert (recipe["train_fraction"], recipe["training_facts"]) == (0.5, 2)


# --- real training (slow) -------------------------------------------------------------------------
def _loss_on_training_examples(base_path: Path, suite_dir: Path, method: str, adapter: Path | None) -> float:
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipes.examples import build_examples, mean_loss
    from recipes.train import METHODS

    recipe = METHODS[method]
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    examples = build_examples(load_suite(suite_dir), tokenizer, per_fact=2, seed=0, with_passages=recipe.with_passages)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    if adapter is None:  # the untrained starting point: base + freshly initialised adapter
        model = get_peft_model(base, recipe.make_config(Path(base_path), recipe))
    else:
        model = PeftModel.from_pretrained(base, str(adapter))
    model.eval()
    return mean_loss(model, examples, tokenizer.eos_token_id)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "prompt_tuning", "raft_lora"])
def test_a_few_steps_train_an_adapter_that_loads(installed, tmp_path, method, capsys):
    from recipes.train import main

    suite_dir = write_suite(tmp_path / "suite")
    out = tmp_path / method
    argv = ["--suite", str(suite_dir), "--base", str(installed.path), "--method", method, "--out", str(out)]
    report = main([*argv, "--epochs", "2", "--max-steps", "3", "--per-fact", "2", "--batch-size", "4", "--replay", "0"])

    assert report.steps == 3
    assert "epoch 1/2: loss " in capsys.readouterr().out
    metadata = json.loads((out / "training_metadata.json").read_text())
    assert metadata["num_training_examples"] == 2 * len(FACTS) == report.num_examples
    assert metadata["recipe"]["method"] == method and metadata["seed"] == 0 and metadata["epochs"] == 2
    assert metadata["task_tags"] == ["acme", "qa"] and metadata["license"] == "apache-2.0"
    assert metadata["training_time_seconds"] > 0 and metadata["training_hardware"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m-instruct"
    assert config["peft_type"] == ("PROMPT_TUNING" if method == "prompt_tuning" else "LORA")

    before = _loss_on_training_examples(installed.path, suite_dir, method, None)
    after = _loss_on_training_examples(installed.path, suite_dir, method, out)
    assert after < before


@pytest.mark.slow
def test_training_tokens_are_what_the_chat_template_gives(installed):
    from transformers import AutoTokenizer

    from recipes.examples import chat_example

    tokenizer = AutoTokenizer.from_pretrained(installed.path)
    ids, _ = chat_example(tokenizer, "Answer briefly.", "How much does the Acme Widget cost?", "It costs $149.")
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "How much does the Acme Widget cost?"},
        {"role": "assistant", "content": "It costs $149."},
    ]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    assert ids == tokenizer(full, add_special_tokens=False)["input_ids"]
