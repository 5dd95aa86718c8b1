"""A shared pass (N LoRAs, one base, mixed batches) stores what N separate runs store."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from evaluator.engine.runner import ArmSpec, RagSpec, run_arm
from evaluator.engine.shared import SharedAdapters, run_arms_shared
from evaluator.suites_registry import SHIPPED_DIR, lmeval_folder

ACME = SHIPPED_DIR / "acme-products"


def _samples(outcome) -> list[dict]:
    return [json.loads(line) for line in outcome.samples_jsonl.decode().splitlines() if line]


def _specs(base: Path, adapters: list[Path], rag: bool) -> list[ArmSpec]:
    return [
        ArmSpec(
            suite_dir=lmeval_folder(ACME, root=Path(tempfile.gettempdir()) / "pefthub-lmeval"),
            tasks=("acme_mc", "acme_qa"),
            base_path=base,
            adapter_path=adapter,
            rag=RagSpec("bm25", ACME / "corpus.jsonl", 2) if rag else None,
            system_instruction="Answer the question in one short sentence.",
            batch_size=4,
            limit=4,
        )
        for adapter in adapters
    ]


@pytest.mark.parametrize("rag", [False, True], ids=["adapter", "adapter+rag"])
def test_shared_pass_equals_separate_runs(tiny_chat_dir, three_loras, rag):
    specs = _specs(tiny_chat_dir, three_loras, rag)
    alone = [run_arm(spec, lambda *_: None) for spec in specs]
    shared = run_arms_shared(specs, lambda *_: None)

    # The adapters really differ, so a mix-up between them would show.
    first_scores = [[s["resps"] for s in _samples(o) if s["task"] == "acme_mc"] for o in alone]
    assert all(first_scores[i] != first_scores[j] for i, j in ((0, 1), (0, 2), (1, 2)))

    for one, together in zip(alone, shared, strict=True):
        assert together.metrics.keys() == one.metrics.keys()
        for task in one.metrics:
            for metric, value in one.metrics[task].items():
                if value is not None and not metric.endswith("_stderr"):
                    assert together.metrics[task][metric] == pytest.approx(value, abs=1e-9), (task, metric)
        assert together.repro["shared_pass"] is True and one.repro["shared_pass"] is False
        for a, b in zip(_samples(one), _samples(together), strict=True):
            assert a["task"] == b["task"] and a["doc_id"] == b["doc_id"]
            assert a["arguments"] == b["arguments"]  # the same prompts (RAG passages included)
            if a["task"] == "acme_mc":
                ll_a = [float(r[0][0]) for r in a["resps"]]
                ll_b = [float(r[0][0]) for r in b["resps"]]
                assert ll_b == pytest.approx(ll_a, abs=1e-3)
            else:
                assert a["resps"] == b["resps"]


def test_a_view_answers_for_its_own_adapter_only(tiny_chat_dir, three_loras):
    """Asking the views in any order gives each adapter's own numbers (nothing is read from
    a neighbour's cache)."""
    specs = _specs(tiny_chat_dir, three_loras, rag=False)
    shared = SharedAdapters(base_path=tiny_chat_dir, adapter_paths=three_loras, batch_size=4)
    backwards = [run_arm(specs[i], lambda *_: None, lm=shared.view(i)) for i in (2, 1, 0)][::-1]
    alone = [run_arm(spec, lambda *_: None) for spec in specs]
    for one, other in zip(alone, backwards, strict=True):
        assert other.metrics["acme_mc"]["acc"] == one.metrics["acme_mc"]["acc"]
        mc = [[float(r[0][0]) for r in s["resps"]] for s in _samples(one) if s["task"] == "acme_mc"]
        mc_other = [[float(r[0][0]) for r in s["resps"]] for s in _samples(other) if s["task"] == "acme_mc"]
        for x, y in zip(mc, mc_other, strict=True):
            assert y == pytest.approx(x, abs=1e-3)


def test_shared_pass_refuses_prompt_learning_and_mismatched_arms(tiny_chat_dir, tiny_chat_prompt_dir, three_loras):
    with pytest.raises(ValueError, match="LoRA adapters only"):
        SharedAdapters(base_path=tiny_chat_dir, adapter_paths=[three_loras[0], tiny_chat_prompt_dir])
    specs = _specs(tiny_chat_dir, three_loras[:2], rag=False)
    specs[1] = ArmSpec(**{**specs[1].__dict__, "limit": 5})
    with pytest.raises(ValueError, match="differ only in their adapter"):
        run_arms_shared(specs, lambda *_: None)
