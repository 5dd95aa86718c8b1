"""The fleet: replicas as rows, placements kept by the hub, affinity routing, failover.

Replicas are fake vLLM servers (``fakes.FakeVLLM``) that count what they answer; the
gateway runs in-process (Django's test client), so its in-flight counters are the ones
the router reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.core.management import call_command

from serving import placement, router, tasks
from serving.engines.vllm_engine import IDENTITY_NAME
from serving.models import Deployment, Placement, Replica
from tests.factories import client_for
from tests.utils import complete

from .conftest import accept, push
from .fakes import Blackhole, FakeVLLM


@dataclass
class Fleet:
    a: FakeVLLM
    b: FakeVLLM
    ra: Replica
    rb: Replica

    def fake(self, replica: Replica) -> FakeVLLM:
        return self.a if replica.pk == self.ra.pk else self.b


@pytest.fixture
def fleet(served_base, settings):
    from serving.engines.registry import reset_engines

    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "base": "vllm", "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = "tiny-llama"
    settings.PEFTHUB_VLLM_URL = "http://127.0.0.1:9"  # the implicit replica; unused once replicas are registered
    settings.PEFTHUB_SERVING_HEALTH_TIMEOUT = 0.5
    settings.PEFTHUB_SERVING_REPLICA_FAILURES = 2
    reset_engines()
    a, b = FakeVLLM("A"), FakeVLLM("B")
    ra = placement.replica_register(base=served_base, url=a.url, max_cpu_loras=4)
    rb = placement.replica_register(base=served_base, url=b.url, max_cpu_loras=4)
    placement.replicas_reconcile()
    yield Fleet(a, b, ra, rb)
    a.kill()
    b.kill()
    reset_engines()


def deploy(alice, repo: str, folder) -> Deployment:
    push(client_for(alice), repo, folder)
    accept(repo, 1)
    name = repo.split("/")[1]
    return Deployment.objects.get(version__adapter__name=name, version__number=1)


def held(replica: Replica) -> set[str]:
    return set(Placement.objects.filter(replica=replica).values_list("engine_model", flat=True))


def test_replicas_are_checked_and_filled_with_the_identity_lora(fleet):
    for replica, fake in ((fleet.ra, fleet.a), (fleet.rb, fleet.b)):
        replica.refresh_from_db()
        assert replica.health == "healthy" and replica.last_error == "" and replica.last_seen_at
        assert set(fake.loaded) == {IDENTITY_NAME} == held(replica)


def test_requests_land_on_the_replica_that_holds_the_adapter(fleet, alice, alice_client, strong):
    one = deploy(alice, "alice/one", strong["lora"])
    two = deploy(alice, "alice/two", strong["lora2"])
    # each went live on one replica, the least loaded when it was accepted
    assert set(fleet.a.loaded) == {IDENTITY_NAME, one.engine_model}
    assert set(fleet.b.loaded) == {IDENTITY_NAME, two.engine_model}
    for _ in range(3):
        for model in ("alice/one", "alice/two"):
            response = complete(alice_client, model)
            assert response.status_code == 200, response.content
            assert response.json()["model"] == model
    assert (fleet.a.answered(one.engine_model), fleet.b.answered(one.engine_model)) == (3, 0)
    assert (fleet.a.answered(two.engine_model), fleet.b.answered(two.engine_model)) == (0, 3)
    assert complete(alice_client, "alice/two").json()["choices"][0]["text"] == f"B:{two.engine_model}"


def test_a_new_adapter_goes_to_the_least_loaded_replica(fleet, alice, alice_client, strong):
    release = [router.acquire(fleet.ra.pk), router.acquire(fleet.ra.pk)]  # two requests in flight on A
    one = deploy(alice, "alice/one", strong["lora"])
    assert one.engine_model in fleet.b.loaded and one.engine_model not in fleet.a.loaded
    for give_back in release:
        give_back()
    two = deploy(alice, "alice/two", strong["lora2"])  # nothing in flight: A holds fewer adapters
    assert two.engine_model in fleet.a.loaded and two.engine_model not in fleet.b.loaded
    # an adapter no replica holds (evicted, say) is loaded where a request finds room, and recorded
    Placement.objects.filter(deployment=two).delete()
    fleet.a.loaded.pop(two.engine_model)
    release = router.acquire(fleet.ra.pk)
    assert complete(alice_client, "alice/two").status_code == 200
    release()
    assert fleet.b.answered(two.engine_model) == 1 and held(fleet.rb) >= {one.engine_model, two.engine_model}


def test_base_requests_go_to_a_base_only_replica(fleet, alice_client, served_base):
    plain = FakeVLLM("C")
    try:
        rc = placement.replica_register(base=served_base, url=plain.url, base_only=True)
        placement.replicas_reconcile()
        assert plain.loaded == {}  # no identity LoRA on a replica without LoRA
        for _ in range(3):
            assert complete(alice_client, "tiny-llama").status_code == 200
        assert plain.answered("tiny-llama") == 3
        assert fleet.a.answered(IDENTITY_NAME) + fleet.b.answered(IDENTITY_NAME) == 0
        plain.kill()
        assert complete(alice_client, "tiny-llama").status_code == 200  # it died: a LoRA replica answers
        assert fleet.a.answered(IDENTITY_NAME) + fleet.b.answered(IDENTITY_NAME) == 1
        rc.refresh_from_db()
        assert rc.health == "unhealthy"
    finally:
        plain.kill()


@pytest.mark.parametrize("death", ["refused", "dropped", "sick"])
def test_a_request_whose_replica_dies_is_retried_once_on_another(fleet, alice, alice_client, strong, death):
    one = deploy(alice, "alice/one", strong["lora"])
    assert one.engine_model in fleet.a.loaded
    if death == "refused":
        fleet.a.kill()
    else:
        fleet.a.mode = {"dropped": "drop", "sick": "sick"}[death]
    response = complete(alice_client, "alice/one")
    assert response.status_code == 200, response.content
    assert response.json()["choices"][0]["text"] == f"B:{one.engine_model}"
    fleet.ra.refresh_from_db()
    assert fleet.ra.health == "unhealthy" and fleet.ra.last_error
    assert one.engine_model in held(fleet.rb)
    # the dead one gets nothing more
    assert complete(alice_client, "alice/one").status_code == 200
    assert fleet.a.answered(one.engine_model) == 0 and fleet.b.answered(one.engine_model) == 2


def test_a_500_from_a_replica_that_is_up_is_not_retried(fleet, alice, alice_client, strong, monkeypatch):
    deploy(alice, "alice/one", strong["lora"])
    fleet.a.mode = "sick"
    monkeypatch.setattr(type(router.replica_engine(fleet.ra)), "probe", lambda self: "")  # /health says fine
    response = complete(alice_client, "alice/one")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "engine_error"
    fleet.ra.refresh_from_db()
    assert fleet.ra.health == "healthy"


def test_when_every_replica_is_down_the_answer_says_which_and_why(fleet, alice, alice_client, strong):
    deploy(alice, "alice/one", strong["lora"])
    fleet.a.kill()
    fleet.b.kill()
    response = complete(alice_client, "alice/one")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert fleet.a.url in message and fleet.b.url in message


def _events(response) -> list[str]:
    text = b"".join(response.streaming_content).decode()
    return [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]


def test_a_stream_that_breaks_ends_with_an_error_event(fleet, alice, alice_client, strong):
    one = deploy(alice, "alice/one", strong["lora"])
    fleet.a.mode = "break_stream"
    response = complete(alice_client, "alice/one", stream=True)
    assert response.status_code == 200
    events = _events(response)
    assert json.loads(events[0])["choices"][0]["text"] == "A"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "engine_unavailable" and "stream" in error["message"]
    assert events[-1] == "[DONE]"
    assert router.inflight(fleet.ra.pk) == 0  # the broken stream gave its slot back
    fleet.a.mode = "ok"
    whole = "".join(
        json.loads(e)["choices"][0]["text"]
        for e in _events(complete(alice_client, "alice/one", stream=True))[:-1]
        if json.loads(e)["choices"]
    )
    assert whole == f"A:{one.engine_model}"


def test_an_unhealthy_replica_leaves_the_rotation_and_its_adapters_move(fleet, alice, alice_client, strong):
    one = deploy(alice, "alice/one", strong["lora"])
    assert one.engine_model in fleet.a.loaded
    fleet.a.mode = "sick"
    placement.replicas_reconcile()  # one failed check: still in rotation
    fleet.ra.refresh_from_db()
    assert fleet.ra.health == "healthy" and "503" in fleet.ra.last_error
    placement.replicas_reconcile()  # two: out, and what only it held goes to B
    fleet.ra.refresh_from_db()
    assert fleet.ra.health == "unhealthy" and "answered 503" in fleet.ra.last_error
    assert one.engine_model in fleet.b.loaded
    for _ in range(3):
        assert complete(alice_client, "alice/one").status_code == 200
    assert fleet.b.answered(one.engine_model) == 3 and sum(fleet.a.requests.values()) == 0
    # it restarts, holding nothing: refilled, then back (and only then) in rotation
    fleet.a.kill()
    fleet.a.start()
    assert fleet.a.loaded == {}
    placement.replicas_reconcile()
    fleet.ra.refresh_from_db()
    assert fleet.ra.health == "healthy" and fleet.ra.last_error == ""
    assert set(fleet.a.loaded) == {IDENTITY_NAME, one.engine_model}


def test_the_reconciler_reloads_what_was_unloaded_behind_its_back(fleet, alice, strong, settings):
    one = deploy(alice, "alice/one", strong["lora"])
    import httpx

    httpx.post(f"{fleet.a.url}/v1/unload_lora_adapter", json={"lora_name": one.engine_model})
    httpx.post(f"{fleet.a.url}/v1/load_lora_adapter", json={"lora_name": "stray", "lora_path": "/tmp/x"})
    assert one.engine_model not in fleet.a.loaded
    # the periodic task (Celery beat) runs the reconciler
    assert settings.CELERY_BEAT_SCHEDULE["serving-replicas-reconcile"]["task"] == tasks.replicas_reconcile.name
    tasks.replicas_reconcile.delay()
    assert set(fleet.a.loaded) == {IDENTITY_NAME, one.engine_model}  # reloaded; the stray one is gone


def test_a_deprecated_version_leaves_every_replica(
    fleet, alice, alice_client, strong, django_capture_on_commit_callbacks
):
    one = deploy(alice, "alice/one", strong["lora"])
    placement.placement_ensure(replica=fleet.rb, deployment=one)  # a hot adapter on both
    assert one.engine_model in fleet.a.loaded and one.engine_model in fleet.b.loaded
    fleet.b.kill()  # down while it is deprecated
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            "/api/v1/adapters/alice/one/versions/1/deprecate/", {"reason": "old"}, format="json"
        )
    assert response.status_code == 200, response.content
    assert one.engine_model not in fleet.a.loaded
    assert not Placement.objects.filter(deployment=one).exists()
    fleet.b.start()
    fleet.b.loaded[one.engine_model] = "/somewhere"  # what it held before it went down
    placement.replicas_reconcile()
    assert one.engine_model not in fleet.b.loaded
    assert complete(alice_client, "alice/one").status_code == 404


def test_a_registered_url_that_never_answers_gets_no_traffic_and_says_why(
    fleet, alice, alice_client, strong, served_base, bob, capsys
):
    from tests.factories import UserFactory

    hole = Blackhole()
    try:
        call_command("serving_replica_add", "--base", "tiny-llama", "--url", hole.url, "--check")
        out = capsys.readouterr().out
        assert f"{hole.url} is unhealthy" in out and "did not answer within" in out
        one = deploy(alice, "alice/one", strong["lora"])
        for _ in range(4):
            assert complete(alice_client, "alice/one").status_code == 200
            assert complete(alice_client, "tiny-llama").status_code == 200
        replica = Replica.objects.get(url=hole.url)
        assert not Placement.objects.filter(replica=replica, deployment=one).exists()
        from hub import services as hub_services

        staff = UserFactory(username="ops", is_staff=True, is_superuser=True)
        _, staff.token = hub_services.api_token_create(user=staff, name="ops")
        client = client_for(staff)
        rows = {r["url"]: r for r in client.get("/api/v1/serving/replicas/").json()}
        assert rows[hole.url]["health"] == "unhealthy" and "did not answer" in rows[hole.url]["last_error"]
        held_a = {p["model"] for p in rows[fleet.a.url]["placements"]}
        assert "alice/one@v1" in held_a and "tiny-llama" in held_a
        assert client_for(bob).get("/api/v1/serving/replicas/").status_code == 403
        client.force_login(staff)
        page = client.get("/admin/serving/replica/").content.decode()
        assert hole.url in page and "did not answer within" in page
    finally:
        hole.close()


def test_one_engine_at_pefthub_vllm_url_needs_no_registration(served_base, alice_client, settings):
    from serving.engines.registry import reset_engines

    settings.PEFTHUB_SERVING_ROUTES = {**settings.PEFTHUB_SERVING_ROUTES, "base": "vllm", "lora": "vllm"}
    settings.PEFTHUB_VLLM_BASE_MODEL = "tiny-llama"
    single = FakeVLLM("solo")
    settings.PEFTHUB_VLLM_URL = single.url
    reset_engines()
    try:
        single.loaded[IDENTITY_NAME] = "/identity"  # what `serving_engine` loads at start
        assert complete(alice_client, "tiny-llama").status_code == 200
        assert single.answered(IDENTITY_NAME) == 1
        replica = Replica.objects.get()
        assert replica.url == single.url and replica.managed
    finally:
        single.kill()
        reset_engines()


def test_serving_replica_add_refuses_what_it_cannot_register(fleet, served_base):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="base model `nope` is not registered"):
        call_command("serving_replica_add", "--base", "nope", "--url", "http://gpu-3:8000")
    with pytest.raises(CommandError, match="not an http"):
        call_command("serving_replica_add", "--base", "tiny-llama", "--url", "gpu-3:8000")
    call_command("serving_replica_add", "--base", "tiny-llama", "--url", "http://gpu-3:8000/", "--max-cpu-loras", "33")
    replica = Replica.objects.get(url="http://gpu-3:8000")
    assert (replica.max_cpu_loras, replica.adapter_slots, replica.managed, replica.health) == (33, 32, False, "unknown")
    call_command("serving_replica_remove", "--url", "http://gpu-3:8000")
    assert not Replica.objects.filter(url="http://gpu-3:8000").exists()
    with pytest.raises(CommandError, match="no replica has the URL"):
        call_command("serving_replica_remove", "--url", "http://gpu-3:8000")


def test_with_no_reconciler_running_a_replica_that_came_back_is_checked_on_demand(fleet, alice_client):
    import datetime

    from django.utils import timezone

    for replica in (fleet.ra, fleet.rb):
        placement.replica_mark_down(replica=replica, why="it was down a while ago")
    assert complete(alice_client, "tiny-llama").status_code == 503  # just checked: not asked again
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Replica.objects.update(checked_at=long_ago)  # and no reconciler has looked since
    fleet.b.kill()
    response = complete(alice_client, "tiny-llama")
    assert response.status_code == 200, response.content
    assert response.json()["choices"][0]["text"] == f"A:{IDENTITY_NAME}"
    states = dict(Replica.objects.values_list("url", "health"))
    assert states == {fleet.a.url: "healthy", fleet.b.url: "unhealthy"}


def test_a_deleted_adapter_leaves_every_replica_and_is_404_at_once(
    fleet, alice, alice_client, strong, django_capture_on_commit_callbacks
):
    from hub.models import OutboxEvent

    one = deploy(alice, "alice/one", strong["lora"])
    other = deploy(alice, "alice/other", strong["lora2"])
    placement.placement_ensure(replica=fleet.rb, deployment=one)  # a hot adapter on both
    assert one.engine_model in fleet.a.loaded and one.engine_model in fleet.b.loaded
    assert complete(alice_client, "alice/one").status_code == 200
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # the event not sent yet
        response = alice_client.generic(
            "DELETE", "/api/repos/delete", json.dumps({"name": "one", "organization": "alice"}), "application/json"
        )
    assert response.status_code == 200, response.content
    # the gateway knows at once, before serving has heard of it
    gone = complete(alice_client, "alice/one")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert not Placement.objects.filter(engine_model=one.engine_model).exists()
    assert one.engine_model in fleet.a.loaded  # the engines still hold it until the event arrives
    event = OutboxEvent.objects.get(event="adapter.deleted")
    assert event.task == "serving.adapter_deleted" and event.args[1] == [one.version_id]
    for callback in callbacks:
        callback()
    assert one.engine_model not in fleet.a.loaded and one.engine_model not in fleet.b.loaded
    assert other.engine_model in fleet.a.loaded | fleet.b.loaded  # the other adapter stays
    assert complete(alice_client, "alice/other").status_code == 200


def test_a_replica_down_when_an_adapter_is_deleted_drops_it_when_it_comes_back(
    fleet, alice, alice_client, strong, django_capture_on_commit_callbacks
):
    one = deploy(alice, "alice/one", strong["lora"])
    ids = (one.version.adapter_id, [one.version_id], [one.version.base_model_id])
    placement.placement_ensure(replica=fleet.rb, deployment=one)
    fleet.b.kill()
    placement.replica_mark_down(replica=fleet.rb, why="killed")
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.generic(
            "DELETE", "/api/repos/delete", json.dumps({"name": "one", "organization": "alice"}), "application/json"
        )
    assert response.status_code == 200, response.content
    assert one.engine_model not in fleet.a.loaded
    tasks.adapter_deleted(*ids)  # delivered again: no harm
    fleet.b.start()
    fleet.b.loaded[one.engine_model] = "/somewhere"  # what it held before it went down
    placement.replicas_reconcile()
    fleet.rb.refresh_from_db()
    assert fleet.rb.health == "healthy" and set(fleet.b.loaded) == {IDENTITY_NAME}


class ManagedFake:
    """What ``FleetSupervisor`` drives, over a fake replica: ``spawn`` restarts it (holding
    nothing, as a restarted vLLM does) and records the base folder it was started on."""

    def __init__(self, fake: FakeVLLM, base_path) -> None:
        self.fake, self.base_path, self.url = fake, str(base_path), fake.url
        self.server, self.process, self.startup_timeout = self, None, 60

    def spawn(self) -> None:
        self.fake.kill()
        self.fake.start()
        self.fake.started_on = self.base_path  # type: ignore[attr-defined]

    def exited(self) -> bool:
        return False

    def stop(self) -> None:
        self.fake.kill()


def test_a_new_base_revision_restarts_the_replicas_on_it_and_refills_them(
    fleet, alice, alice_client, strong, served_base, served_base_dir, tmp_path, django_capture_on_commit_callbacks
):
    import shutil

    from serving.exceptions import ServingError
    from serving.supervisor import FleetSupervisor
    from tests.factories import register_base

    old = deploy(alice, "alice/old", strong["lora"])  # made on revision 0…
    placement.placement_ensure(replica=fleet.rb, deployment=old)
    assert old.engine_model in fleet.a.loaded and old.engine_model in fleet.b.loaded
    fakes = {fleet.ra.pk: fleet.a, fleet.rb.pk: fleet.b}
    by_url = {fake.url: fake for fake in fakes.values()}
    supervisor = FleetSupervisor(
        served_base,
        {pk: ManagedFake(fake, served_base_dir) for pk, fake in fakes.items()},
        make_engine=lambda base, url, index: ManagedFake(by_url[url], base.local_path),
    )
    supervisor.check_once()  # same revision: nothing restarts
    assert supervisor.restarts == {fleet.ra.pk: 0, fleet.rb.pk: 0}

    newer = tmp_path / "tiny-llama-rev9"
    shutil.copytree(served_base_dir, newer)
    with django_capture_on_commit_callbacks(execute=True):  # hub_base_model_add with other weights
        register_base(newer, "tiny-llama", "test-org/tiny-llama", "9" * 64)
    # the version made on revision 0 leaves the replicas at once (they are to run revision 9)
    old.refresh_from_db()
    assert old.engine == "peft" and not Placement.objects.filter(deployment=old).exists()
    assert old.engine_model not in fleet.a.loaded and old.engine_model not in fleet.b.loaded
    with pytest.raises(ServingError, match="made on revision 000000000000"):
        placement.placement_ensure(replica=Replica.objects.get(pk=fleet.ra.pk), deployment=old)
    new = deploy(alice, "alice/new", strong["lora2"])  # made on revision 9
    assert new.version.base_revision == "9" * 64 and new.engine == "vllm"

    supervisor.check_once()  # the supervisor notices, restarts both on the new folder, refills them
    assert supervisor.restarts == {fleet.ra.pk: 1, fleet.rb.pk: 1}
    assert fleet.a.started_on == fleet.b.started_on == str(newer)
    for replica in Replica.objects.filter(pk__in=fakes):
        assert replica.health == "healthy", replica.last_error
    assert new.engine_model in fleet.a.loaded | fleet.b.loaded
    assert old.engine_model not in fleet.a.loaded | fleet.b.loaded
    assert IDENTITY_NAME in fleet.a.loaded and IDENTITY_NAME in fleet.b.loaded

    answer = complete(alice_client, "alice/new")
    assert answer.status_code == 200, answer.content
    assert answer.json()["choices"][0]["text"].endswith(new.engine_model)  # from a replica on revision 9
    answer = complete(alice_client, "alice/old@v1")  # the peft engine on revision 0
    assert answer.status_code == 200, answer.content
    assert sum(fake.answered(old.engine_model) for fake in fakes.values()) == 0
    supervisor.check_once()  # and only once
    assert supervisor.restarts == {fleet.ra.pk: 1, fleet.rb.pk: 1}


def test_a_hot_adapter_is_placed_on_another_replica_and_requests_spread(fleet, alice, alice_client, strong, settings):
    settings.PEFTHUB_SERVING_HOT_INFLIGHT = 2
    one = deploy(alice, "alice/one", strong["lora"])
    assert one.engine_model in fleet.a.loaded and one.engine_model not in fleet.b.loaded
    busy = [router.acquire(fleet.ra.pk)]  # one request in flight on A: below the threshold
    assert complete(alice_client, "alice/one").json()["choices"][0]["text"] == f"A:{one.engine_model}"
    assert one.engine_model not in fleet.b.loaded
    busy.append(router.acquire(fleet.ra.pk))  # two: hot; B has room and nothing in flight
    assert complete(alice_client, "alice/one").json()["choices"][0]["text"] == f"B:{one.engine_model}"
    assert one.engine_model in fleet.b.loaded and held(fleet.rb) >= {one.engine_model}
    assert one.engine_model in fleet.a.loaded  # it stays on A too
    # both hold it now: each request goes to the holder with fewer in flight
    for give_back in busy:
        give_back()
    on_b = [router.acquire(fleet.rb.pk)]
    assert complete(alice_client, "alice/one").json()["choices"][0]["text"] == f"A:{one.engine_model}"
    on_b[0]()
    on_a = [router.acquire(fleet.ra.pk)]
    assert complete(alice_client, "alice/one").json()["choices"][0]["text"] == f"B:{one.engine_model}"
    on_a[0]()
    # a reconcile keeps both placements (they are the hub's wish, not a stray load)
    placement.replicas_reconcile()
    assert one.engine_model in fleet.a.loaded and one.engine_model in fleet.b.loaded


def test_a_hot_adapter_does_not_evict_others_to_spread(fleet, alice, alice_client, strong, settings):
    settings.PEFTHUB_SERVING_HOT_INFLIGHT = 2
    one = deploy(alice, "alice/one", strong["lora"])
    assert one.engine_model in fleet.a.loaded
    others = [deploy(alice, f"alice/other{i}", strong["lora2"]) for i in range(3)]
    for other in others:  # B's three adapter slots full
        Placement.objects.filter(deployment=other).delete()
        placement.placement_ensure(replica=fleet.rb, deployment=other)
    assert len(held(fleet.rb)) == 4  # the identity LoRA and three adapters
    busy = [router.acquire(fleet.ra.pk) for _ in range(3)]
    assert complete(alice_client, "alice/one").json()["choices"][0]["text"] == f"A:{one.engine_model}"
    assert {o.engine_model for o in others} <= set(fleet.b.loaded) and one.engine_model not in fleet.b.loaded
    settings.PEFTHUB_SERVING_HOT_INFLIGHT = 0  # off: one replica per adapter, however busy
    Placement.objects.filter(deployment=others[0]).delete()
    assert complete(alice_client, "alice/one").json()["choices"][0]["text"] == f"A:{one.engine_model}"
    for give_back in busy:
        give_back()
