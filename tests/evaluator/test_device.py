"""The evaluator's device and dtype: decided in one place, reaching every backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from evaluator.engine import backends, device

ROOT = Path(__file__).resolve().parents[2]


def test_auto_picks_cuda_when_torch_reports_one(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.placement("auto", "auto") == device.Placement(device="cuda", dtype="bfloat16")


def test_auto_picks_cpu_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.placement("auto", "auto") == device.Placement(device="cpu", dtype="float32")


def test_explicit_values_win(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.placement("cuda:1", "float16") == device.Placement(device="cuda:1", dtype="float16")


def test_an_unknown_dtype_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"PEFTHUB_EVAL_DTYPE `fp8` is not known.*bfloat16"):
        device.placement("cpu", "fp8")


def test_the_settings_reach_the_hf_model_args(settings, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    settings.PEFTHUB_EVAL_DEVICE = "auto"
    settings.PEFTHUB_EVAL_DTYPE = "auto"
    args = backends.HFPeftBackend().model_args(base_path=Path("/b"), adapter_path=Path("/a"), batch_size=4)
    assert (args["device"], args["dtype"], args["peft"], args["batch_size"]) == ("cuda", "bfloat16", "/a", 4)

    settings.PEFTHUB_EVAL_DEVICE = "cpu"
    args = backends.HFPeftBackend().model_args(base_path=Path("/b"), adapter_path=None, batch_size=4)
    assert (args["device"], args["dtype"]) == ("cpu", "float32")


def test_the_dtype_reaches_the_vllm_model_args(settings, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    settings.PEFTHUB_EVAL_DEVICE = "auto"
    settings.PEFTHUB_EVAL_DTYPE = "auto"
    assert backends.vllm_model_args(Path("/b"), 8, 64)["dtype"] == "bfloat16"


def test_the_shared_pass_and_the_runner_use_the_resolved_placement(settings, monkeypatch):
    """SharedAdapters builds its HFLM with the resolved device (the model load is stubbed)."""
    import lm_eval.models.huggingface as hf

    from evaluator.engine import shared

    seen = {}

    class Stop(Exception):
        pass

    def fake_hflm(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(hf, "HFLM", fake_hflm)
    settings.PEFTHUB_EVAL_DEVICE = "cuda:3"
    settings.PEFTHUB_EVAL_DTYPE = "float16"
    adapter = ROOT / "tmp-adapter-for-test"
    monkeypatch.setattr(shared.json, "loads", lambda _: {"peft_type": "LORA"})
    monkeypatch.setattr(Path, "read_text", lambda self: "{}")
    with pytest.raises(Stop):
        shared.SharedAdapters(base_path=Path("/b"), adapter_paths=[adapter])
    assert (seen["device"], seen["dtype"]) == ("cuda:3", "float16")


def _device_literals(path: Path) -> list[int]:
    """Lines where a call passes ``device=<string literal>``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "device" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    lines.append(node.lineno)
    return lines


def test_no_evaluator_code_passes_a_device_of_its_own():
    offenders = {
        str(p.relative_to(ROOT)): lines for p in (ROOT / "evaluator").rglob("*.py") if (lines := _device_literals(p))
    }
    assert offenders == {}


# --- where the vllm backend scores loglikelihood: decided by platform, forced by a setting --------
def test_the_vllm_backend_scores_loglikelihood_on_vllm_on_cuda_and_on_hf_on_cpu(monkeypatch, settings):
    import torch

    from evaluator.engine.backends import loglikelihood_path

    settings.PEFTHUB_EVAL_DEVICE = "auto"
    settings.PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD = "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loglikelihood_path() == "vllm"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loglikelihood_path() == "hf"
    settings.PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD = "vllm"  # forced, even on CPU
    assert loglikelihood_path() == "vllm"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    settings.PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD = "hf"  # forced, even on CUDA
    assert loglikelihood_path() == "hf"
    settings.PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD = "gpu"
    with pytest.raises(ValueError, match="PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD `gpu` is not known"):
        loglikelihood_path()


@pytest.mark.parametrize(("path", "split"), [("vllm", False), ("hf", True)])
def test_the_vllm_backend_builds_the_lm_its_loglikelihood_path_needs(monkeypatch, settings, tmp_path, path, split):
    """On the vllm path one lm-eval vLLM model scores and generates (same LoRA request); on the
    hf path loglikelihood goes to hf + peft and generation to vLLM (SplitLM)."""
    from evaluator.engine.wrappers import SplitLM

    settings.PEFTHUB_EVAL_VLLM_LOGLIKELIHOOD = path
    generator, scorer = object(), object()
    monkeypatch.setattr(backends.VLLMBackend, "_generator", lambda self, *args: generator)
    monkeypatch.setattr(backends.HFPeftBackend, "make_lm", lambda self, **kwargs: scorer)
    monkeypatch.setattr(backends.HFPeftBackend, "describe", lambda self: {"backend": "hf"})
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    backend = backends.VLLMBackend()
    lm = backend.make_lm(base_path=tmp_path, adapter_path=tmp_path, batch_size=4)
    assert isinstance(lm, SplitLM) is split
    assert (lm is generator) is not split
    assert backend.describe()["loglikelihood"] == path and backend.describe()["generation"] == "vllm"
