"""``hub_base_model_add --from-hub``: a second hub downloads a base model from a live pefthub
that serves it (the HF protocol of :mod:`hub.hf.api`) and records the same revision."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from hub.basemodels import folder_revision
from hub.basemodels.hub import check_weights
from hub.exceptions import HubError
from hub.models import BaseModel
from tests.factories import client_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
# tests/conftest.py sets both offline switches; huggingface_hub honours either.
OFFLINE_AND_TOKEN = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "DJANGO_SETTINGS_MODULE")


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path) -> Path:
    """Each hub's base model copies in a folder of the test's own."""
    settings.PEFTHUB_DATA_DIR = str(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def source(hf_llama_dir) -> BaseModel:
    """The hub being downloaded from holds the tiny Llama (with its tokenizer)."""
    call_command(
        "hub_base_model_add", str(hf_llama_dir), "--name", "tiny-llama-3", "--alias", "test-org/Tiny-Llama-3",
        "--license", "llama3.1",
    )  # fmt: skip
    return BaseModel.objects.get(name="tiny-llama-3")


def _other_hub(tmp_path: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    """``manage.py`` of a second hub: its own database (SQLite) and data folder."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in OFFLINE_AND_TOKEN},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite3'}",
        "PEFTHUB_DATA_DIR": str(tmp_path / "other-data"),
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_second_hub_adds_the_base_from_the_first_at_its_revision(hub, source, tmp_path):
    migrated = _other_hub(tmp_path, hub.url, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    added = _other_hub(
        tmp_path, hub.url, "hub_base_model_add", "--from-hub", "test-org/Tiny-Llama-3",
        "--revision", source.revision[:40], "--name", "llama-copy",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"Added revision {source.revision[:12]} of base model `llama-copy`" in added.stdout

    # The same files, so the same revision, kept in the second hub's own data folder.
    with sqlite3.connect(tmp_path / "other.sqlite3") as db:
        row = db.execute("SELECT revision, license, local_path, architecture FROM hub_basemodel").fetchone()
        aliases = {a for (a,) in db.execute("SELECT alias FROM hub_basemodelalias")}
    revision, license, local_path, architecture = row
    assert (revision, license, architecture) == (source.revision, "llama3.1", "LlamaForCausalLM")
    assert Path(local_path) == tmp_path / "other-data" / "base_models" / "llama-copy" / source.revision
    assert folder_revision(Path(local_path)) == source.revision
    assert aliases == {"llama-copy", "test-org/Tiny-Llama-3"}
    assert not list((tmp_path / "other-data" / "tmp").glob("base-from-hub-*"))  # the download is gone


def test_an_unknown_repo_or_revision_is_refused_with_what_to_fix(hub, source, data_dir, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    with pytest.raises(Exception, match="`test-org/nothing` was not found at http"):
        call_command(
            "hub_base_model_add", "--from-hub", "test-org/nothing", "--revision", "a" * 40, "--name", "x",
        )  # fmt: skip
    with pytest.raises(Exception, match="has no revision `v9`"):
        call_command(
            "hub_base_model_add", "--from-hub", "tiny-llama-3", "--revision", "v9", "--name", "tiny-llama-3",
        )  # fmt: skip
    with pytest.raises(Exception, match="pin the revision"):
        call_command("hub_base_model_add", "--from-hub", "test-org/Tiny-Llama-3", "--name", "x")
    assert not BaseModel.objects.filter(name="x").exists()
    assert not [p for p in (data_dir / "base_models").glob("x*")]


def test_pickle_only_weights_are_refused_before_downloading():
    with pytest.raises(HubError, match=r"only pickle weights \(pytorch_model.bin\)"):
        check_weights("org/old", ["config.json", "pytorch_model.bin", "tokenizer.json"])
    check_weights("org/both", ["model.safetensors", "pytorch_model.bin"])  # the pickle is left out
    with pytest.raises(HubError, match=r"no \*\.safetensors weights"):
        check_weights("org/none", ["config.json"])


# --- POST /api/v1/base-models/ (staff) ---------------------------------------------------------
def _post(client, **body):
    return client.post("/api/v1/base-models/", body, format="json")


def test_only_staff_add_base_models_over_rest(db, alice, alice_client):
    body = {"from_hub": "test-org/Tiny-Llama-3", "revision": "a" * 40, "name": "x"}
    assert _post(client_for(), **body).status_code == 401
    refused = _post(alice_client, **body)
    assert refused.status_code == 403
    assert "adding a base model is for staff" in refused.json()["error"]["message"]
    assert not BaseModel.objects.exists()


def test_staff_add_over_rest_with_clear_refusals(hub, source, alice, alice_client, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])

    missing = _post(alice_client, from_hub="test-org/Tiny-Llama-3", name="llama-copy")
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "revision")
    unknown = _post(alice_client, from_hub="test-org/nothing", revision="a" * 40, name="llama-copy")
    assert unknown.status_code == 400
    assert "`test-org/nothing` was not found at http" in unknown.json()["error"]["message"]
    # Its HF id already names the source base here: refused before anything is downloaded.
    taken = _post(alice_client, from_hub="test-org/Tiny-Llama-3", revision=source.revision[:40], name="llama-copy")
    assert taken.status_code == 409
    assert "alias `test-org/Tiny-Llama-3` already names base model `tiny-llama-3`" in taken.json()["error"]["message"]
    assert list(BaseModel.objects.values_list("name", flat=True)) == ["tiny-llama-3"]

    # Downloaded again under its own name (on the worker: eager here): the same files, so the
    # revision it had, and no new one.
    again = _post(alice_client, from_hub="tiny-llama-3", revision=source.revision[:40], name="tiny-llama-3")
    assert again.status_code == 202, again.json()
    job = again.json()
    assert again["Location"] == job["url"] == f"/api/v1/base-model-imports/{job['id']}/"
    polled = alice_client.get(job["url"]).json()
    assert (polled["status"], polled["error"], polled["new_revision"]) == ("done", "", False)
    assert polled["base_model"]["revision"] == source.revision and polled["requested_by"] == "alice"
    assert BaseModel.objects.get().revisions.count() == 1
    assert [j["id"] for j in alice_client.get("/api/v1/base-model-imports/").json()] == [job["id"]]


def test_the_download_runs_on_a_worker_not_in_the_request(hub, source, alice, alice_client, monkeypatch, settings):
    """With no worker taking it yet, the request answers 202 ``queued`` and downloads nothing;
    asked again meanwhile, the same download is answered; the worker then adds the base."""
    from hub import services
    from hub.models import BaseModelImport

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    settings.PEFTHUB_EVENT_TASKS = {**settings.PEFTHUB_EVENT_TASKS, "base_model.import_requested": []}
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    body = {"from_hub": "tiny-llama-3", "revision": source.revision[:40], "name": "tiny-llama-3"}
    first, second = _post(alice_client, **body), _post(alice_client, **body)
    assert first.status_code == second.status_code == 202, (first.json(), second.json())
    assert first.json()["status"] == "queued" and second.json()["id"] == first.json()["id"]
    assert list(BaseModel.objects.values_list("name", flat=True)) == ["tiny-llama-3"]

    job = services.base_model_import_run(import_id=first.json()["id"], data_dir=Path(settings.PEFTHUB_DATA_DIR))
    assert job is not None and job.status == "done", job.error
    assert (job.base_model, job.new_revision) == (source, False)  # the files it had: no new revision
    again = services.base_model_import_run(import_id=job.pk, data_dir=Path(settings.PEFTHUB_DATA_DIR))
    assert again is not None and again.finished_at == job.finished_at  # a redelivered message: left alone
    assert BaseModelImport.objects.get().status == "done"


def test_a_download_that_fails_on_the_worker_says_why_and_adds_nothing(
    hub, source, alice, alice_client, monkeypatch, data_dir
):
    import huggingface_hub

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])

    def cut(*args, **kwargs):
        raise ConnectionError("the connection was reset half-way")

    real = huggingface_hub.snapshot_download
    monkeypatch.setattr(huggingface_hub, "snapshot_download", cut)
    answer = _post(alice_client, from_hub="tiny-llama-3", revision=source.revision[:40], name="tiny-llama-3")
    assert answer.status_code == 202
    polled = alice_client.get(answer.json()["url"]).json()
    assert polled["status"] == "failed" and polled["base_model"] is None
    assert "could not download `tiny-llama-3`" in polled["error"] and "reset half-way" in polled["error"]
    assert list(BaseModel.objects.values_list("name", flat=True)) == ["tiny-llama-3"]
    assert source.revisions.count() == 1 and not any((data_dir / "tmp").iterdir())  # the staging is gone
    # asking again after a failure is a new download
    monkeypatch.setattr(huggingface_hub, "snapshot_download", real)
    retried = _post(alice_client, from_hub="tiny-llama-3", revision=source.revision[:40], name="tiny-llama-3")
    assert retried.json()["id"] != answer.json()["id"]
    assert alice_client.get(retried.json()["url"]).json()["status"] == "done"


def test_a_download_whose_worker_vanished_fails_after_the_timeout(db, alice, settings):
    from django.utils import timezone

    from hub import services
    from hub.models import BaseModelImport

    settings.PEFTHUB_BASE_IMPORT_TIMEOUT = 60
    common = {"from_hub": "org/x", "revision": "a" * 40, "commit": "a" * 40, "name": "x", "status": "running"}
    old = BaseModelImport.objects.create(**common, started_at=timezone.now() - timezone.timedelta(seconds=120))
    recent = BaseModelImport.objects.create(**common, started_at=timezone.now())
    assert services.base_model_imports_expire() == [old.pk]
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, recent.status) == ("failed", "running") and "ask again" in old.error


def test_only_staff_read_downloads(db, alice_client, client):
    assert client_for().get("/api/v1/base-model-imports/").status_code == 401
    assert alice_client.get("/api/v1/base-model-imports/").status_code == 403
    assert alice_client.get("/api/v1/base-model-imports/1/").status_code == 403


def test_the_schema_describes_the_post(db, client):
    schema = client.get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/v1/base-models/"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][body]["required"]) == {"from_hub", "revision", "name"}


# --- the admin ------------------------------------------------------------------------------
def test_staff_add_a_base_model_in_the_admin(hub, source, admin_client, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    page = admin_client.get("/admin/hub/basemodel/add/")
    assert page.status_code == 200
    assert 'name="from_hub"' in page.content.decode()

    unknown = admin_client.post(
        "/admin/hub/basemodel/add/", {"from_hub": "test-org/nothing", "revision": "a" * 40, "name": "x"}
    )
    assert unknown.status_code == 200
    assert "`test-org/nothing` was not found at http" in unknown.content.decode()

    again = admin_client.post(
        "/admin/hub/basemodel/add/",
        {"from_hub": "tiny-llama-3", "revision": source.revision[:40], "name": "tiny-llama-3"},
    )
    from hub.models import BaseModelImport

    job = BaseModelImport.objects.get()
    assert again.status_code == 302
    assert again["Location"] == f"/admin/hub/basemodelimport/{job.pk}/change/"
    assert (job.status, job.base_model) == ("done", source)  # the worker ran it (eager here)
    page = admin_client.get(again["Location"]).content.decode()
    assert "on a worker" in page and "done" in page
    assert list(BaseModel.objects.values_list("name", flat=True)) == ["tiny-llama-3"]
