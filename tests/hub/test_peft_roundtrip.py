"""The real thing: adapters trained on SmolLM2-135M-Instruct go up, come down, load with
``PeftModel.from_pretrained`` and give exactly the outputs they gave before the upload."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.utils import folder_files, upload

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

TEXTS = [
    "Acme's Widget Pro costs 42 dollars and ships from Oslo.",
    "The capital of France is",
]


@pytest.fixture(scope="module")
def base_and_tokenizer(installed):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(installed.path)
    return installed.path, tokenizer, AutoModelForCausalLM


def _train(base_path: Path, tokenizer, model_class, peft_config, out: Path, steps: int = 3) -> Path:
    """A few real optimisation steps, then peft's own save_pretrained."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(model_class.from_pretrained(base_path), peft_config)
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out


def _logits(base_path: Path, tokenizer, model_class, adapter_dir: Path):
    import torch
    from peft import PeftModel

    model = PeftModel.from_pretrained(model_class.from_pretrained(base_path), adapter_dir).eval()
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def _download(client, adapter: str, dest: Path) -> Path:
    response = client.get(f"/api/v1/adapters/{adapter}/versions/latest/archive/")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content))) as archive:
        archive.extractall(dest, filter="data")
    return dest


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_adapter_survives_the_round_trip(method, smollm2, base_and_tokenizer, alice_client, tmp_path):
    import torch
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit

    base_path, tokenizer, model_class = base_and_tokenizer
    config = (
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        if method == "lora"
        else PromptTuningConfig(
            num_virtual_tokens=8,
            task_type="CAUSAL_LM",
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text="Answer questions about Acme products.",
            tokenizer_name_or_path=str(base_path),
        )
    )
    trained = _train(base_path, tokenizer, model_class, config, tmp_path / "trained")
    before = _logits(base_path, tokenizer, model_class, trained)

    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": method}, format="json")
    # The training job saved a local path as the base: the explicit base model decides.
    response = upload(
        alice_client,
        f"alice/{method}",
        folder_files(trained),
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["card"]["method"] == method
    assert response.json()["card"]["lineage"]["base_revision"] == smollm2.revision

    downloaded = _download(alice_client, f"alice/{method}", tmp_path / "downloaded")
    assert folder_files(downloaded) == folder_files(trained)
    after = _logits(base_path, tokenizer, model_class, downloaded)
    assert torch.equal(before, after)
    # and the adapter really changes the model: the comparison is not vacuous
    with torch.no_grad():
        plain = (
            model_class.from_pretrained(base_path).eval()(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
        )
    assert not torch.equal(plain, after[:, -plain.shape[1] :, :])
