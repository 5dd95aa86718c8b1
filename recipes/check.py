"""A quick held-out check of a trained adapter (the real scores come from the evaluator).

Greedy generation on the suite's test questions with the chat template and system
instruction; a question counts as answered when the suite's ``answer_match`` (or, without
one, normalised containment) finds the answer in the output, as its lm-eval task scores it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .augment import Suite, load_suite, normalize
from .retrieval import BM25, question_with_passages, split_passages


def generate_answers(
    model: Any,
    tokenizer: Any,
    system: str,
    questions: Sequence[str],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 40,
) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    outputs: list[str] = []
    for start in range(0, len(questions), batch_size):
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": q}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for q in questions[start : start + batch_size]
        ]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new = generated[:, batch["input_ids"].shape[1] :]
        outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return outputs


def answer_matcher(suite: Suite) -> Callable[[str, str], bool]:
    """The suite's own ``utils.answer_match(response, answer)`` when it ships one (so this
    check scores like its lm-eval task), else normalised containment."""
    utils = suite.path / "utils.py"
    if utils.is_file():
        spec = importlib.util.spec_from_file_location(f"_suite_utils_{suite.path.name.replace('-', '_')}", utils)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if callable(getattr(module, "answer_match", None)):
                return module.answer_match
    return lambda response, answer: normalize(answer) in normalize(response)


def score_model(
    model: Any,
    tokenizer: Any,
    suite: Suite,
    *,
    limit: int = 30,
    with_passages: bool = False,
    k: int | None = None,
) -> tuple[float, list[tuple[dict[str, Any], str, bool]]]:
    """Share of the first ``limit`` held-out questions answered, and (row, output, hit) each.
    ``with_passages`` puts the BM25 top-``k`` documents (default: the suite's ``top_k``) in
    front of each question, as the evaluator's RAG arm does."""
    rows = suite.test[:limit]
    if not rows:
        raise ValueError(f"{suite.path} has no test.jsonl questions to check")
    questions = [str(r["question"]) for r in rows]
    if with_passages:
        index = BM25(split_passages(suite.corpus))
        top = k or suite.top_k
        questions = [question_with_passages(q, [index.passages[i] for i in index.search(q, top)]) for q in questions]
    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(model, tokenizer, suite.system_instruction, questions)
    finally:
        model.train(was_training)
    match = answer_matcher(suite)
    hits = [bool(match(a, str(r["answer"]))) for r, a in zip(rows, answers, strict=True)]
    return sum(hits) / len(hits), list(zip(rows, answers, hits, strict=True))


def check_adapter(
    *,
    base_path: Path | str,
    adapter_dir: Path | str | None,
    suite_dir: Path | str,
    limit: int = 30,
    with_passages: bool = False,
    log: Callable[[str], Any] = print,
) -> float:
    """Load the base (and the adapter, unless ``adapter_dir`` is None) and ``score_model`` it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    suite = load_suite(suite_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    started = time.monotonic()
    accuracy, samples = score_model(model, tokenizer, suite, limit=limit, with_passages=with_passages)
    arm = f"{'adapter' if adapter_dir else 'base'}{' + RAG' if with_passages else ''}"
    log(f"{arm}: {accuracy:.0%} of {len(samples)} held-out answered in {time.monotonic() - started:.0f} s")
    for row, answer, hit in samples[:3]:
        log(f"  {'ok ' if hit else 'MISS'} {row['question']} -> {answer.strip()!r} (want {row['answer']!r})")
    return accuracy


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recipes.check", description=__doc__.split("\n")[0])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--adapter", help="adapter folder (omit for the base model)")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--rag", action="store_true", help="put BM25 top-3 passages in the prompt")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train._quiet_openmp
    check_adapter(
        base_path=args.base,
        adapter_dir=args.adapter,
        suite_dir=args.suite,
        limit=args.limit,
        with_passages=args.rag,
    )


if __name__ == "__main__":
    main()
