"""An upload whose LoRA B weights are all zero is accepted, with a warning on its card."""

from __future__ import annotations

import io
import struct

import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from hub.models import AdapterVersion
from hub.validation import check_finite, read_safetensors_header
from tests.factories import save_adapter
from tests.hub.validation.builders import WEIGHTS, tensors_bytes
from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def untrained_dir(tiny_base_dir, tmp_path_factory):
    from peft import LoraConfig

    # noise=0 keeps peft's initialisation: A random, B zero (an adapter saved before training).
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return save_adapter(tiny_base_dir, tmp_path_factory.mktemp("untrained"), config, noise=0)


@pytest.fixture
def adapter(alice_client, tiny_base):
    response = alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "fresh"}, format="json")
    assert response.status_code == 201, response.json()
    return "alice/fresh"


def test_a_lora_with_b_all_zero_is_accepted_with_a_warning(alice_client, adapter, untrained_dir):
    response = upload(alice_client, adapter, folder_files(untrained_dir))
    assert response.status_code == 201, response.json()
    warnings = response.json()["card"]["warnings"]
    assert len(warnings) == 1
    assert "every LoRA B weight is zero (4 tensors)" in warnings[0]
    assert AdapterVersion.objects.get().warnings == warnings
    # the API's version view and the adapter page show it too
    assert alice_client.get(f"/api/v1/adapters/{adapter}/versions/1/").json()["card"]["warnings"] == warnings
    page = alice_client.get(f"/adapters/{adapter}/").content.decode()
    assert 'data-flag="card-warning"' in page and "every LoRA B weight is zero" in page


def test_a_trained_lora_has_no_warning(alice_client, adapter, lora_dir):
    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert response.status_code == 201, response.json()
    assert response.json()["card"]["warnings"] == []
    page = alice_client.get(f"/adapters/{adapter}/").content.decode()
    assert 'data-flag="card-warning"' not in page


def test_one_non_zero_b_weight_is_enough_to_count_as_trained(alice_client, adapter, untrained_dir):
    files = folder_files(untrained_dir)
    tensors = st_load(files[WEIGHTS])
    last_b = sorted(name for name in tensors if name.endswith("lora_B.weight"))[-1]
    tensors[last_b] = tensors[last_b].copy()
    tensors[last_b][0, 0] = 1e-3
    response = upload(alice_client, adapter, {**files, WEIGHTS: st_save(tensors)})
    assert response.status_code == 201, response.json()
    assert response.json()["card"]["warnings"] == []


def _zeros(data: bytes) -> frozenset[str]:
    fileobj = io.BytesIO(data)
    _, tensors = read_safetensors_header(fileobj, len(data), filename=WEIGHTS, max_header_bytes=1024**2)
    (header_size,) = struct.unpack("<Q", data[:8])
    return check_finite(fileobj, header_size, tensors, filename=WEIGHTS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_the_finite_scan_names_all_zero_tensors_negative_zero_included(dtype):
    zero = torch.tensor([0.0, -0.0, 0.0, -0.0], dtype=dtype)
    tiny = torch.tensor([0.0, 0.0, torch.finfo(dtype).tiny / 4, 0.0], dtype=dtype)  # a subnormal is not zero
    found = _zeros(tensors_bytes({"zero": zero, "tiny": tiny, "ints": torch.zeros(3, dtype=torch.int32)}))
    assert found == {"zero"}  # integer tensors are not floating weights: never reported


def test_the_zero_check_spans_chunks(monkeypatch):
    from hub.validation import finite

    monkeypatch.setattr(finite, "CHUNK_BYTES", 64)
    values = torch.zeros(1000)
    assert _zeros(tensors_bytes({"z": values})) == {"z"}
    values[999] = 1.0  # non-zero only in the last chunk
    assert _zeros(tensors_bytes({"z": values})) == frozenset()
