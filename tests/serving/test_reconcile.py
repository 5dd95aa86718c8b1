"""Accepted versions whose ``version.accepted`` event was lost are served by the
reconciler; a replayed event changes nothing, and never undoes an owner's undeploy."""

from __future__ import annotations

import pytest

from hub.models import AdapterVersion, OutboxEvent
from hub.services import adapter_version_set_status
from serving import tasks
from serving.models import Deployment
from serving.reconcile import deployments_reconcile
from tests.factories import client_for
from tests.serving.conftest import accept, push

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(served_base, alice, engine):
    return client_for(alice)


def test_reconciler_serves_an_accepted_version_whose_event_was_lost(alice_api, strong):
    push(alice_api, "alice/lost", strong["lora"])
    version = AdapterVersion.objects.get(adapter__name="lost")
    adapter_version_set_status(version=version, status="accepted", reasons=["test"])  # never committed: not sent
    assert OutboxEvent.objects.get(event="version.accepted").sent_at is None
    assert not Deployment.objects.filter(version=version).exists()
    assert alice_api.get("/api/v1/adapters/alice/lost/versions/1/deployment/").json().get("live") is not True

    assert deployments_reconcile() == [version.pk]
    deployment = Deployment.objects.get(version=version)
    assert deployment.live and deployment.reason == "accepted"
    assert "alice/lost@v1" in {m["id"] for m in alice_api.get("/v1/models").json()["data"]}
    assert deployments_reconcile() == []


def test_replayed_accept_is_a_no_op_and_respects_an_undeploy(alice_api, strong, django_capture_on_commit_callbacks):
    push(alice_api, "alice/twice", strong["lora"])
    accept("alice/twice", 1)
    version = AdapterVersion.objects.get(adapter__name="twice")
    first = Deployment.objects.get(version=version)
    tasks.version_accepted(version.pk)  # delivered again (at least once)
    assert list(Deployment.objects.filter(version=version).values_list("pk", "live", "engine_model")) == [
        (first.pk, True, first.engine_model)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.post("/api/v1/adapters/alice/twice/versions/1/undeploy/").json()["live"] is False
    tasks.version_accepted(version.pk)  # `hub_events_replay --all-since` sends it again
    assert deployments_reconcile() == []
    assert Deployment.objects.get(version=version).live is False


def test_reconciler_leaves_serving_alone_when_it_does_not_subscribe(alice_api, strong, settings):
    push(alice_api, "alice/off", strong["lora"])
    version = AdapterVersion.objects.get(adapter__name="off")
    adapter_version_set_status(version=version, status="accepted", reasons=["test"])
    settings.PEFTHUB_EVENT_TASKS = {**settings.PEFTHUB_EVENT_TASKS, "version.accepted": []}
    assert deployments_reconcile() == []
    assert not Deployment.objects.filter(version=version).exists()


def test_a_re_evaluation_that_rejects_a_live_version_takes_it_off_and_a_later_accept_brings_it_back(
    alice_api, strong, django_capture_on_commit_callbacks
):
    push(alice_api, "alice/turned", strong["lora"])
    accept("alice/turned", 1)
    version = AdapterVersion.objects.get(adapter__name="turned")
    assert "alice/turned@v1" in {m["id"] for m in alice_api.get("/v1/models").json()["data"]}

    # A new suite version re-scores it, and the policy now rejects it.
    with django_capture_on_commit_callbacks(execute=True):
        adapter_version_set_status(version=version, status="rejected", reasons=["gain 0.01 < 0.05"])
    deployment = Deployment.objects.get(version=version)
    assert (deployment.live, deployment.reason) == (False, "withdrawn")
    assert "alice/turned@v1" not in {m["id"] for m in alice_api.get("/v1/models").json()["data"]}
    response = alice_api.post("/v1/completions", {"model": "alice/turned@v1", "prompt": "hi"}, format="json")
    assert response.status_code == 404
    tasks.version_withdrawn(version.pk)  # delivered again: nothing changes
    assert Deployment.objects.get(version=version).live is False
    assert deployments_reconcile() == []  # a rejected version is not the reconciler's to serve

    accept("alice/turned", 1)  # accepted again by a later run
    assert Deployment.objects.get(version=version).live is True
    tasks.version_withdrawn(version.pk)  # a late copy of the old withdrawal leaves it live
    assert Deployment.objects.get(version=version).live is True


def test_a_rejection_of_a_version_never_accepted_emits_no_withdrawal(alice_api, strong):
    push(alice_api, "alice/never", strong["lora"])
    version = AdapterVersion.objects.get(adapter__name="never")
    adapter_version_set_status(version=version, status="rejected", reasons=["gain 0.01 < 0.05"])
    assert not OutboxEvent.objects.filter(event="version.withdrawn").exists()


def test_a_version_made_on_an_older_base_revision_is_served_on_that_revision(
    alice_api, served_base, served_base_dir, strong, tmp_path
):
    """v1 is validated against revision 0…; the base then gets revision 9… (same shapes, other
    weights) and v2 is made on it. Each is served on the weights it was validated against."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from serving.engines import get_engine, reset_engines
    from tests.factories import register_base

    push(alice_api, "alice/old", strong["lora"])
    old = AdapterVersion.objects.get(adapter__name="old")
    assert old.base_revision == "0" * 64

    newer = tmp_path / "tiny-llama-rev9"
    shutil.copytree(served_base_dir, newer)
    weights = load_file(newer / "model.safetensors")
    save_file(
        {name: torch.flip(tensor, dims=[0]).contiguous() for name, tensor in weights.items()},
        newer / "model.safetensors",
    )
    register_base(newer, "tiny-llama", "test-org/tiny-llama", "9" * 64)
    reset_engines()  # serving restarted on the new revision
    push(alice_api, "alice/new", strong["lora2"])
    new = AdapterVersion.objects.get(adapter__name="new")
    assert new.base_revision == "9" * 64

    accept("alice/old", 1)
    accept("alice/new", 1)
    for model in ("alice/old@v1", "alice/new@v1"):
        response = alice_api.post(
            "/v1/completions", {"model": model, "prompt": "hello", "max_tokens": 4}, format="json"
        )
        assert response.status_code == 200, response.content
    on_old = get_engine("peft", base_name=f"tiny-llama@{'0' * 12}", base_path=served_base_dir)
    on_new = get_engine("peft", base_name="tiny-llama", base_path=newer)
    assert on_old.spec.base_path == served_base_dir and on_new.spec.base_path == newer
    assert Deployment.objects.get(version=old).engine_model in on_old.loaded()
    assert Deployment.objects.get(version=new).engine_model in on_new.loaded()
    assert Deployment.objects.get(version=new).engine_model not in on_old.loaded()
    reset_engines()
