"""Helpers the tests share: upload a folder the way a training job would."""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


def folder_files(folder: Path, **overrides: bytes | None) -> dict[str, bytes]:
    """The files of a peft output folder, with some replaced (bytes) or dropped (None)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    for name, content in overrides.items():
        name = name.replace("__", ".")
        if content is None:
            files.pop(name, None)
        else:
            files[name] = content
    return files


def upload(client, adapter: str, files: dict[str, bytes], **fields):
    """POST a multipart upload of ``files`` to ``adapter`` (namespace/name)."""
    data: dict = {
        "files": [SimpleUploadedFile(name, content) for name, content in files.items()],
    }
    for key, value in fields.items():
        data[key] = json.dumps(value) if key == "metadata" and not isinstance(value, str) else value
    return client.post(f"/api/v1/adapters/{adapter}/versions/", data, format="multipart")


def upload_archive(client, adapter: str, name: str, content: bytes, **fields):
    data = {"archive": SimpleUploadedFile(name, content), **fields}
    return client.post(f"/api/v1/adapters/{adapter}/versions/", data, format="multipart")


def edit_config(folder: Path, **changes) -> bytes:
    config = json.loads((folder / "adapter_config.json").read_text())
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    return json.dumps(config).encode()


def tar_bytes(entries: dict[str, bytes], *, gz: bool = True, links: dict[str, str] | None = None) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def wait_for_workers(predicate, timeout: float, what: str, logs: Path):
    """Poll ``predicate`` until it is truthy (and return it); on timeout, fail with the tails
    of the ``*.log`` files in ``logs`` (the Celery workers' output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out waiting for {what}\n{tails}")


VLLM_API_KEY = "slow-test-engine-key"  # what docker/compose.yml runs with: every call of the hub carries one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def managed_vllm(
    base_path: Path, state_dir: Path, *, max_loaded: int, max_loras: int, extra_args: list[str] | None = None
):
    """A managed vLLM server on SmolLM2 with LoRA on, not started yet: float32 (the greedy
    comparisons need it: bf16 answers vary with the batch), 1 GiB of KV cache, an API key."""
    from serving.engines.base import EngineSpec
    from serving.engines.vllm_engine import VLLMEngine
    from tests.factories import SMOL

    return VLLMEngine(
        EngineSpec(base_name=SMOL, base_path=base_path, max_loaded=max_loaded, max_rank=16),
        url=f"http://127.0.0.1:{free_port()}",
        manage=True,
        max_loras=max_loras,
        kv_cache_gib=1,
        dtype="float32",
        state_dir=state_dir,
        startup_timeout=600,
        api_key=VLLM_API_KEY,
        extra_args=extra_args,
    )


# --- the /v1 gateway and the slow tests' SmolLM2 -------------------------------------------
def complete(client, model: str, **extra):
    body = {"model": model, "prompt": "Hello", "max_tokens": 6, "temperature": 0, **extra}
    return client.post("/v1/completions", body, format="json")


def assert_openai_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] and error["type"]
    return error


#: prompts the slow serving tests send
PROMPTS = [
    "The capital of France is",
    "List three colours:",
    "Once upon a time",
    "def fibonacci(n):",
]


def push_smol(client, repo: str, folder: Path) -> None:
    """Create ``repo`` and upload the adapter in ``folder`` for the bundled SmolLM2."""
    from tests.factories import SMOL

    namespace, name = repo.split("/")
    client.post("/api/v1/adapters/", {"namespace": namespace, "name": name}, format="json")
    response = upload(client, repo, folder_files(folder), base_model=SMOL)
    assert response.status_code in (200, 201), response.content
