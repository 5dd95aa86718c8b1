"""Training examples: chat-formatted, answer-only labels, left-padded batches.

The prompt is the base tokenizer's chat template with the suite's system instruction,
exactly as lm-eval ``--apply_chat_template --system_instruction`` renders a question, and
only the assistant's turn is labelled.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .augment import Suite, augment_suite
from .retrieval import BM25, gold_passage, question_with_passages, raft_passages, split_passages

Example = tuple[list[int], list[int]]  # input_ids, labels (IGNORE outside the answer)
IGNORE = -100


def chat_example(tokenizer: Any, system: str, question: str, answer: str) -> Example:
    """Token ids of the chat-formatted exchange and labels that keep only the assistant turn."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not extend the generation prompt with the answer")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def build_examples(
    suite: Suite, tokenizer: Any, *, per_fact: int, seed: int, with_passages: bool, k: int = 3
) -> list[Example]:
    pairs = augment_suite(suite, per_fact=per_fact, seed=seed)
    if with_passages and not suite.corpus:
        raise ValueError(f"{suite.path}: raft_lora needs corpus.jsonl for retrieval")
    index = BM25(split_passages(suite.corpus)) if with_passages else None
    facts = {f.id: f for f in suite.facts}
    golds: dict[str, int | None] = {}
    rng = random.Random(seed)
    examples = []
    for pair in pairs:
        question = pair.question
        if index is not None:
            if pair.fact_id not in golds:
                golds[pair.fact_id] = gold_passage(index, facts[pair.fact_id])
            passages = raft_passages(index, question, golds[pair.fact_id], k=k, rng=rng)
            question = question_with_passages(question, passages)
        examples.append(chat_example(tokenizer, suite.system_instruction, question, pair.answer))
    return examples


def batches(examples: Sequence[Example], batch_size: int, rng: random.Random | None, pad_id: int):
    """Left-padded batches, shuffled by ``rng`` if given: every answer ends at the last position, so only the
    last ``answer length + 1`` positions need logits (the LM head is a fifth of the model)."""
    import torch

    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        rows = [examples[i] for i in order[start : start + batch_size]]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (row_ids, row_labels) in enumerate(rows):
            ids[r, width - len(row_ids) :] = torch.tensor(row_ids)
            labels[r, width - len(row_ids) :] = torch.tensor(row_labels)
            mask[r, width - len(row_ids) :] = 1
        answer = max(sum(1 for t in row_labels if t != IGNORE) for _, row_labels in rows)
        yield ids, mask, labels, answer


def batch_loss(model: Any, ids: Any, mask: Any, labels: Any, answer: int) -> Any:
    """Mean cross-entropy over the answer tokens of a left-padded batch."""
    import torch

    keep = answer + 1
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels[:, -(keep - 1) :].reshape(-1), ignore_index=IGNORE
    )


def mean_loss(model: Any, examples: Sequence[Example], pad_id: int, batch_size: int = 8) -> float:
    """Average answer loss over ``examples``, without gradients (before/after comparisons)."""
    import torch

    losses = []
    with torch.no_grad():
        for batch in batches(examples, batch_size, None, pad_id):
            losses.append(batch_loss(model, *batch).item())
    return sum(losses) / max(len(losses), 1)


def distill_loss(model: Any, ids: Any, mask: Any) -> Any:
    """KL(base || adapter) over every real token of a left-padded batch, prompt included:
    the teacher is the same model with its adapter disabled, so no second copy is held.
    Anchors the whole next-token distribution, not just the base's one greedy answer."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad(), model.disable_adapter():
        teacher = F.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), dim=-1)
    student = F.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), dim=-1)
    valid = (mask[:, :-1] * mask[:, 1:]).bool()  # positions that predict a real token from a real one
    teacher, student = teacher[valid], student[valid]
    return (teacher.exp() * (teacher - student)).sum(-1).mean()
