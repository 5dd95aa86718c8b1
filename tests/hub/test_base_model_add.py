"""Adding base models from Hugging Face folders: what is recorded, what is refused, and
how a second revision leaves older adapter versions bound to theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from hub.basemodels import folder_revision
from hub.models import AdapterVersion, BaseModel, BaseModelRevision
from hub.selectors import base_revision_get, base_revision_spec, version_base_path
from tests.factories import CHATML, save_tiny_qwen2
from tests.utils import folder_files, upload


@pytest.fixture(scope="session")
def hf_qwen2_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2, another shape than the tiny Llama (hidden size 32)."""
    return save_tiny_qwen2(tmp_path_factory.mktemp("hf-qwen2") / "tiny-qwen2")


def _add(folder: Path, name: str, *extra: str) -> BaseModel:
    call_command("hub_base_model_add", str(folder), "--name", name, *extra)
    return BaseModel.objects.get(name=name)


def _new_adapter(client, name: str) -> str:
    response = client.post("/api/v1/adapters/", {"namespace": "alice", "name": name}, format="json")
    assert response.status_code == 201, response.json()
    return f"alice/{name}"


def test_a_llama_folder_is_added_with_everything_recorded(db, hf_llama_dir, settings):
    base = _add(hf_llama_dir, "tiny-llama-3", "--alias", "test-org/Tiny-Llama-3", "--license", "llama3.1")

    assert base.revision == folder_revision(hf_llama_dir)
    assert (base.architecture, base.hidden_size, base.num_layers, base.vocab_size) == ("LlamaForCausalLM", 64, 2, 128)
    assert base.modules["model.layers.1.self_attn.k_proj"] == ["linear", 64, 32]
    assert base.modules["model.embed_tokens"] == ["embedding", 128, 64]
    assert base.chat_template == CHATML
    assert base.license == "llama3.1"
    assert set(base.aliases.values_list("alias", flat=True)) == {"tiny-llama-3", "test-org/Tiny-Llama-3"}
    # The hub keeps its own copy of this revision, apart from the operator's folder.
    assert Path(base.local_path) == Path(settings.PEFTHUB_DATA_DIR) / "base_models" / "tiny-llama-3" / base.revision
    assert folder_revision(Path(base.local_path)) == base.revision
    assert list(base.revisions.values_list("revision", flat=True)) == [base.revision]


def test_adding_the_same_folder_again_adds_no_revision(db, hf_llama_dir):
    _add(hf_llama_dir, "tiny-llama-3")
    base = _add(hf_llama_dir, "tiny-llama-3")
    assert base.revisions.count() == 1


def test_an_adapter_for_the_added_base_uploads(db, alice_client, hf_llama_dir, lora_dir):
    base = _add(hf_llama_dir, "tiny-llama-3", "--alias", "test-org/tiny-llama")
    adapter = _new_adapter(alice_client, "llama-bot")
    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert response.status_code == 201, response.json()
    version = AdapterVersion.objects.get()
    assert (version.base_model, version.base_revision) == (base, base.revision)


def test_a_qwen2_folder_is_added_and_refuses_an_adapter_of_another_shape(db, alice_client, hf_qwen2_dir, lora_dir):
    base = _add(hf_qwen2_dir, "tiny-qwen2", "--alias", "test-org/tiny-qwen2")
    assert (base.architecture, base.hidden_size) == ("Qwen2ForCausalLM", 32)
    assert base.modules["model.layers.0.self_attn.q_proj"] == ["linear", 32, 32]

    adapter = _new_adapter(alice_client, "qwen-bot")
    # lora_dir was made for the tiny Llama (hidden size 64): q_proj's A is [4, 64], Qwen2's q_proj takes 32.
    response = upload(alice_client, adapter, folder_files(lora_dir), base_model="tiny-qwen2")
    assert response.status_code == 422, response.json()
    message = response.json()["error"]["message"]
    assert "q_proj.lora_A.weight` has shape [4, 64]" in message and "expected [4, 32]" in message, message
    assert not AdapterVersion.objects.exists()


def test_pickle_weights_are_refused(db, hf_llama_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(hf_llama_dir, folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CommandError, match=r"pytorch_model\.bin: pickle files .* safe_serialization=True"):
        _add(folder, "pickled")
    assert not BaseModel.objects.filter(name="pickled").exists()


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("config.json", "has no config.json"),
        ("model.safetensors", r"no \*\.safetensors"),
        ("tokenizer.json", "no tokenizer"),
    ],
)
def test_an_incomplete_folder_is_refused_with_what_is_missing(db, hf_llama_dir, tmp_path, remove, message):
    folder = tmp_path / "incomplete"
    shutil.copytree(hf_llama_dir, folder)
    (folder / remove).unlink()
    with pytest.raises(CommandError, match=message):
        _add(folder, "incomplete")


def test_a_bad_name_and_a_taken_alias_are_refused(db, hf_llama_dir, hf_qwen2_dir):
    with pytest.raises(CommandError, match="base model name `Bad Name!` is not valid"):
        _add(hf_llama_dir, "Bad Name!")
    _add(hf_llama_dir, "tiny-llama-3", "--alias", "test-org/tiny-llama")
    with pytest.raises(CommandError, match="alias `test-org/tiny-llama` already names base model `tiny-llama-3`"):
        _add(hf_qwen2_dir, "tiny-qwen2", "--alias", "test-org/tiny-llama")


def test_a_second_revision_leaves_older_versions_bound_to_theirs(
    db, alice_client, hf_llama_dir, tmp_path, lora_dir, lora_dir_2
):
    import torch
    from transformers import AutoModelForCausalLM

    source = tmp_path / "operator-folder"
    shutil.copytree(hf_llama_dir, source)
    first = _add(source, "tiny-llama-3", "--alias", "test-org/tiny-llama")
    first_revision, first_path = first.revision, first.local_path
    adapter = _new_adapter(alice_client, "llama-bot")
    assert upload(alice_client, adapter, folder_files(lora_dir)).status_code == 201
    old = AdapterVersion.objects.get()

    # The operator retrains in place: other weights, same folder, same name.
    model = AutoModelForCausalLM.from_pretrained(source)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    model.save_pretrained(source)
    second = _add(source, "tiny-llama-3")

    assert second.revision != first_revision
    assert second.revision == folder_revision(source)
    assert set(BaseModelRevision.objects.filter(base_model=second).values_list("revision", flat=True)) == {
        first_revision,
        second.revision,
    }
    old.refresh_from_db()
    assert old.base_revision == first_revision
    # The older version still loads and validates against the weights it was made for.
    assert version_base_path(old) == first_path
    assert folder_revision(Path(first_path)) == first_revision
    old_spec = base_revision_spec(base_revision_get(base=second, revision=first_revision))
    assert old_spec.modules["model.layers.0.self_attn.q_proj"].in_features == 64

    assert upload(alice_client, adapter, folder_files(lora_dir_2)).status_code == 201
    new = AdapterVersion.objects.exclude(pk=old.pk).get()
    assert new.base_revision == second.revision
    assert version_base_path(new) == second.local_path != first_path
