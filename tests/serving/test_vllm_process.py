"""A vLLM server that dies leaves its engine core and workers behind (they are its
children, and outlive it): before a new server starts, what is left of the old one's
process group is killed, so that two do not hold the memory and cores at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from serving.engines.base import EngineSpec
from serving.engines.vllm_process import VLLMProcess

# A stand-in for vLLM's API server: it starts a long-lived child (its "engine core"), then dies.
DIES_LEAVING_A_CHILD = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
    "print(child.pid, flush=True); time.sleep(300)"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waits for its parent, it does not run
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_respawn_kills_what_the_dead_server_left(tmp_path, monkeypatch):
    server = VLLMProcess(
        EngineSpec(base_name="b", base_path=tmp_path, max_loaded=1),
        url="http://127.0.0.1:9",
        max_loras=1,
        kv_cache_gib=1,
        dtype="float32",
        extra_args=[],
        state_dir=tmp_path,
        bind_host=None,
    )
    command = [sys.executable, "-c", DIES_LEAVING_A_CHILD]
    monkeypatch.setattr(server, "command", lambda: command)
    server.spawn()
    deadline = time.monotonic() + 30
    while not server.log_path.read_text().strip():
        assert time.monotonic() < deadline, "the stand-in did not start its child"
        time.sleep(0.05)
    child = int(server.log_path.read_text().split()[0])
    os.kill(server.process.pid, signal.SIGKILL)  # the API server alone dies (OOM killer, a crash)
    server.process.wait()
    assert _alive(child), "the child outlives its parent, as vLLM's engine core does"
    try:
        command = [sys.executable, "-c", "import time; time.sleep(300)"]
        server.spawn()  # the supervisor's restart
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the dead server's child was left running"
            time.sleep(0.05)
        assert server.running()
    finally:
        server.stop()
    assert server.process is None
    subprocess.run(["true"])  # nothing else to clean: the new server's group went with stop()
