"""The write side of the HF protocol with the real client against a live server:
``create_repo``, ``upload_folder``, ``upload_file``, ``create_commit``, LFS, ``hf upload``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from hub.models import AdapterVersion, AuditEvent, Blob, VersionFile
from tests.factories import client_for
from tests.hub.refusals import REFUSALS, wrong_shape

pytestmark = pytest.mark.django_db(transaction=True)

REPO = "alice/pushed"


def _api(hub, user):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=user.token)


def _versions(user, repo=REPO) -> list[dict]:
    response = client_for(user).get(f"/api/v1/adapters/{repo}/versions/")
    assert response.status_code == 200, response.json()
    return response.json()


def _files(version: dict) -> set[str]:
    return {f["path"] for f in version["files"]}


def test_upload_folder_then_readme_then_deletion(hub, tiny_base, alice, lora_dir):
    from huggingface_hub import CommitOperationDelete

    api = _api(hub, alice)
    url = api.create_repo(REPO, exist_ok=True)
    assert url.repo_id == REPO
    api.create_repo(REPO, exist_ok=True)  # again: fine

    info = api.upload_folder(repo_id=REPO, folder_path=lora_dir, commit_message="first weights")
    (v1,) = _versions(alice)
    assert v1["version"] == 1 and v1["commit_title"] == "first weights"
    assert info.oid == v1["content_hash"][:40]
    assert _files(v1) == {p.name for p in lora_dir.iterdir()}

    api.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\n# Pushed\n",
        path_in_repo="README.md",
        repo_id=REPO,
        commit_message="card only",
        commit_description="a README change",
    )
    v2, _ = _versions(alice)
    assert (v2["version"], v2["commit_title"], v2["commit_description"]) == (2, "card only", "a README change")
    assert v2["card"]["license"] == "mit"
    weights = {f["path"]: f["sha256"] for f in v2["files"] if f["path"] != "README.md"}
    assert weights == {f["path"]: f["sha256"] for f in v1["files"] if f["path"] != "README.md"}

    api.create_commit(repo_id=REPO, operations=[CommitOperationDelete("README.md")], commit_message="drop the card")
    v3 = _versions(alice)[0]
    assert v3["version"] == 3 and "README.md" not in _files(v3)

    # Nothing changed: the client skips the commit or the hub answers with the same version.
    api.upload_folder(repo_id=REPO, folder_path=lora_dir, allow_patterns=["adapter_*"])
    assert len(_versions(alice)) == 3


@pytest.mark.parametrize("mode", ["inline", "lfs"])
def test_a_file_over_10_mb(hub, tiny_base, alice, lora_dir, settings, monkeypatch, tmp_path, mode):
    """``inline``: the client as installed (with hf_xet): every file rides in the commit, the
    big one on a long NDJSON line. ``lfs``: a client without Xet (HF_HUB_DISABLE_XET=1) and
    a hub that hands out LFS from 10 MB: the big file goes through the batch API and one
    basic-transfer PUT."""
    from huggingface_hub import constants

    if mode == "lfs":
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        settings.PEFTHUB_HF_LFS_THRESHOLD = 10 * 1024**2
    folder = tmp_path / "big"
    folder.mkdir()
    for path in lora_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    vocab = {f"token-{i:07d}": i for i in range(600_000)}
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"vocab": vocab}}))
    big = (folder / "tokenizer.json").read_bytes()
    assert len(big) > 10 * 1024**2

    api = _api(hub, alice)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="with a big tokenizer")
    (version,) = _versions(alice)
    stored = {f["path"]: f for f in version["files"]}
    assert stored["tokenizer.json"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert stored["tokenizer.json"]["size"] == len(big)
    batches = [c for c in hub.calls if c[1].endswith(f"/{REPO}.git/info/lfs/objects/batch")]
    puts = [c for c in hub.calls if c[0] == "PUT" and "/api/hf-lfs/upload/" in c[1]]
    assert not [c for c in hub.calls if "xet" in c[1]]
    if mode == "inline":
        assert (batches, puts) == ([], [])
    else:
        assert len(batches) == 1
        assert len(puts) == 1  # only the big file: the small ones ride in the commit
        staging = Path(settings.STORAGES["default"]["OPTIONS"]["location"]) / "hf-lfs"
        assert [p for p in staging.rglob("*") if p.is_file()] == []  # the commit consumed it


@pytest.mark.parametrize("mode", ["inline", "lfs"])
def test_refused_push_fails_with_the_hubs_message_and_keeps_nothing(
    hub, tiny_base, alice, lora_dir, blob_dir, tmp_path, settings, monkeypatch, mode
):
    """The REST upload's message for the same files; no version, blob, file or staged object."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    from tests.utils import folder_files, upload

    if mode == "lfs":  # every file over LFS, so the weights are staged, then dropped
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        settings.PEFTHUB_HF_LFS_THRESHOLD = 1

    folder = tmp_path / "bad"
    folder.mkdir()
    for path in lora_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "adapter_model.safetensors").write_bytes(wrong_shape(lora_dir))
    api = _api(hub, alice)
    api.create_repo(REPO)
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert refused.value.response.status_code == 422
    client_for(alice).post("/api/v1/adapters/", {"namespace": "alice", "name": "rest"}, format="json")
    rest = upload(client_for(alice), "alice/rest", folder_files(folder))
    assert rest.status_code == 422
    message = rest.json()["error"]["message"]
    assert "lora_A" in message and "shape" in message
    assert message in str(refused.value)
    if mode == "lfs":
        assert [c for c in hub.calls if c[0] == "PUT" and "/api/hf-lfs/upload/" in c[1]]
    assert AdapterVersion.objects.count() == 0
    assert Blob.objects.count() == 0 and VersionFile.objects.count() == 0
    assert not AuditEvent.objects.filter(kind="version.created").exists()
    assert [p for p in blob_dir.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("case", sorted(set(REFUSALS) - {"empty"}))
def test_every_refused_upload_class_is_refused_through_the_hf_client_with_the_rest_message(
    case, hub, tiny_base, alice, lora_dir, blob_dir, tmp_path
):
    """Each bad upload of the REST tests (REFUSALS), pushed with ``upload_folder``: the client
    fails with the REST upload's status and message, and nothing of it is stored."""
    from huggingface_hub.errors import HfHubHTTPError

    from tests.utils import upload

    build, status, words = REFUSALS[case]
    files = build(lora_dir)
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    client_for(alice).post("/api/v1/adapters/", {"namespace": "alice", "name": "rest"}, format="json")
    rest = upload(client_for(alice), "alice/rest", files)
    assert rest.status_code == status
    message = rest.json()["error"]["message"]

    api = _api(hub, alice)
    api.create_repo(REPO)
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert refused.value.response.status_code == status
    assert message in str(refused.value), (message, str(refused.value))
    for word in words:
        assert word in message
    assert AdapterVersion.objects.count() == 0
    assert Blob.objects.count() == 0 and VersionFile.objects.count() == 0
    assert not AuditEvent.objects.filter(kind="version.created").exists()
    assert [p for p in blob_dir.rglob("*") if p.is_file()] == []


def test_stale_parent_commit_is_refused(hub, tiny_base, alice, lora_dir, lora_dir_2):
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(hub, alice)
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=lora_dir)
    api.upload_folder(repo_id=REPO, folder_path=lora_dir_2)
    with pytest.raises(HfHubHTTPError) as stale:
        api.upload_file(path_or_fileobj=b"# late\n", path_in_repo="README.md", repo_id=REPO, parent_commit=first.oid)
    assert stale.value.response.status_code == 412
    assert "A commit has happened since" in str(stale.value)
    assert len(_versions(alice)) == 2
    # With the right parent it goes through.
    head = api.model_info(REPO).sha
    api.upload_file(path_or_fileobj=b"# on time\n", path_in_repo="README.md", repo_id=REPO, parent_commit=head)
    assert len(_versions(alice)) == 3


def test_private_repo_settings_and_delete(hub, tiny_base, alice, bob, lora_dir):
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = _api(hub, alice)
    api.create_repo(REPO, private=True)
    api.upload_folder(repo_id=REPO, folder_path=lora_dir)
    assert api.model_info(REPO).private is True
    with pytest.raises(RepositoryNotFoundError):
        _api(hub, bob).model_info(REPO)
    assert REPO not in [m.id for m in _api(hub, bob).list_models(author="alice")]
    assert REPO in [m.id for m in api.list_models(author="alice")]
    with pytest.raises(HfHubHTTPError) as foreign:
        _api(hub, bob).create_repo(REPO)
    assert foreign.value.response.status_code == 403

    api.update_repo_settings(REPO, private=False)
    assert _api(hub, bob).model_info(REPO).private is False
    with pytest.raises(HfHubHTTPError) as not_owner:
        _api(hub, bob).delete_repo(REPO)
    assert not_owner.value.response.status_code == 403
    api.delete_repo(REPO)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(REPO)


def test_read_side_agrees_with_the_rest_api(hub, tiny_base, alice, lora_dir, lora_dir_2):
    api = _api(hub, alice)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=lora_dir, commit_message="one")
    api.upload_folder(repo_id=REPO, folder_path=lora_dir_2, commit_message="two")
    response = client_for(alice).put(f"/api/v1/adapters/{REPO}/aliases/prod/", {"version": "1"}, format="json")
    assert response.status_code == 200
    versions = _versions(alice)
    sha = {v["version"]: v["content_hash"][:40] for v in versions}

    info = api.model_info(REPO)
    assert info.sha == sha[2] and info.private is False
    assert info.card_data.base_model == "test-org/tiny-llama"
    rest_files = {f["path"]: (f["size"], f["sha256"]) for f in versions[0]["files"]}
    assert {s.rfilename: (s.size, s.lfs.sha256) for s in info.siblings} == rest_files
    uploaded = datetime.fromisoformat(versions[0]["created_at"].replace("Z", "+00:00"))
    assert abs((info.last_modified - uploaded).total_seconds()) < 0.001  # v2's upload, to the millisecond

    refs = api.list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": sha[2], "latest": sha[2], "prod": sha[1]}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": sha[1], "v2": sha[2]}

    commits = api.list_repo_commits(REPO)
    assert [(c.commit_id, c.title, c.authors) for c in commits] == [
        (sha[2], "two", ["alice"]),
        (sha[1], "one", ["alice"]),
    ]
    assert [c.commit_id for c in api.list_repo_commits(REPO, revision="prod")] == [sha[1]]

    (model,) = list(api.list_models(filter="base_model:adapter:test-org/tiny-llama", full=True, cardData=True))
    assert model.id == REPO and model.sha == sha[2]
    assert {s.rfilename for s in model.siblings} == set(rest_files)
    assert list(api.list_models(filter="base_model:adapter:other/model")) == []
    assert [m.id for m in api.list_models(search="push", sort="last_modified", limit=5)] == [REPO]

    paths = api.get_paths_info(REPO, ["adapter_config.json", "nope.json"], revision="v1")
    assert [(p.path, p.lfs.sha256) for p in paths] == [
        ("adapter_config.json", hashlib.sha256((lora_dir / "adapter_config.json").read_bytes()).hexdigest())
    ]
    assert api.file_exists(REPO, "adapter_config.json") and not api.file_exists(REPO, "nope.json")
    assert api.revision_exists(REPO, "v2") and api.revision_exists(REPO, "prod")
    assert not api.revision_exists(REPO, "v9")


def _client_env(live_server, user, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=live_server.url,
        HF_TOKEN=user.token,
        HF_HOME=str(home),
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def test_hf_upload_cli_makes_a_version(live_server, tiny_base, alice, lora_dir, tmp_path):
    hf = Path(sys.executable).parent / "hf"
    done = subprocess.run(
        [str(hf), "upload", REPO, str(lora_dir), ".", "--commit-message", "from the CLI"],
        env=_client_env(live_server, alice, tmp_path / "hf-home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (version,) = _versions(alice)
    assert version["commit_title"] == "from the CLI"
    assert _files(version) == {p.name for p in lora_dir.iterdir()}


PUSH_SCRIPT = r"""
import sys
from peft import PeftModel
from transformers import AutoModelForCausalLM

base_dir, local_dir, repo_id = sys.argv[1:4]
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), local_dir)
model.push_to_hub(repo_id, commit_message="push_to_hub")
"""


def test_peft_push_to_hub_makes_a_version(live_server, tiny_base, tiny_base_dir, alice, lora_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PUSH_SCRIPT, str(tiny_base_dir), str(lora_dir), REPO],
        env=_client_env(live_server, alice, tmp_path / "hf-home"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (version,) = _versions(alice)
    assert version["commit_title"] == "push_to_hub"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= _files(version)


def test_card_names_the_base_by_its_hf_id_not_the_uploaders_path(hub, tiny_base, alice, lora_dir):
    """A version uploaded with a local path in its config: HF tools see the base's HF id, and a
    README-only commit on top keeps the base the REST upload named."""
    from tests.utils import edit_config, folder_files, upload

    client_for(alice).post("/api/v1/adapters/", {"namespace": "alice", "name": "pushed"}, format="json")
    files = folder_files(lora_dir, adapter_config__json=edit_config(lora_dir, base_model_name_or_path="/home/me/tiny"))
    response = upload(client_for(alice), REPO, files, base_model="tiny-llama")
    assert response.status_code == 201, response.json()

    api = _api(hub, alice)
    info = api.model_info(REPO)
    assert info.card_data.base_model == "test-org/tiny-llama"
    assert "base_model:adapter:test-org/tiny-llama" in info.tags
    api.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id=REPO)
    latest = _versions(alice)[0]
    assert latest["version"] == 2 and latest["card"]["lineage"]["base_model"] == "tiny-llama"


def _play_worker(job_id: int) -> None:
    """Finish a queued job as a worker would, with lm-eval-shaped outcomes (no model)."""
    from django.test import TestCase

    from evaluator import lifecycle, planning
    from evaluator.models import EvaluationJob
    from tests.web.conftest import _Outcome, _pattern

    lifecycle.job_start(job_id=job_id)
    job = EvaluationJob.objects.select_related("suite", "version").get(pk=job_id)
    for planned in planning.plan(job):
        right = {task: _pattern(0.75 if planned.arm in planning.ADAPTER_ARMS else 0.5) for task in planned.suite.tasks}
        outcome = _Outcome(planned.suite, right, rag=planned.arm in planning.RAG_ARMS)
        lifecycle.arm_run_store(key=planning.run_key(job, planned), suite=planned.suite, job=job, outcome=outcome)
    with TestCase.captureOnCommitCallbacks(execute=True):
        lifecycle.job_finish(job_id=job_id)


def test_a_readme_only_commit_reuses_the_evaluation(hub, tiny_base, alice, lora_dir, monkeypatch):
    """upload_file(README.md) makes v2, whose jobs take v1's arm runs: nothing runs again.
    A commit that changes the adapter's config is evaluated afresh."""
    from django.core.management import call_command

    from evaluator.models import ArmRun, EvaluationJob
    from evaluator.tasks import run_evaluation_job

    call_command("evaluator_install_suites", verbosity=0)
    queued: list[int] = []
    monkeypatch.setattr(run_evaluation_job, "apply_async", lambda args, **kwargs: queued.append(args[0]))
    api = _api(hub, alice)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=lora_dir)
    (first,) = queued
    _play_worker(first)
    runs = ArmRun.objects.count()
    assert runs > 0

    api.upload_file(path_or_fileobj=b"# A better card\n", path_in_repo="README.md", repo_id=REPO)
    v1, v2 = (AdapterVersion.objects.get(adapter__name="pushed", number=n) for n in (1, 2))
    assert v1.content_hash != v2.content_hash and v1.answers_hash == v2.answers_hash
    job = EvaluationJob.objects.get(version=v2)
    assert queued == [first], "a README-only version must not be queued for lm-eval"
    assert (job.status, job.reused) == ("finished", True)
    assert set(job.runs.all()) == set(EvaluationJob.objects.get(pk=first).runs.all())
    assert ArmRun.objects.count() == runs
    v2.refresh_from_db()
    assert v2.status == v1.status != "pending"

    config = json.loads((lora_dir / "adapter_config.json").read_text())
    config["lora_dropout"] = 0.25  # changes the config file, so possibly the answers
    api.upload_file(path_or_fileobj=json.dumps(config).encode(), path_in_repo="adapter_config.json", repo_id=REPO)
    v3 = AdapterVersion.objects.get(adapter__name="pushed", number=3)
    assert v3.answers_hash != v1.answers_hash
    assert queued[1:] == [EvaluationJob.objects.get(version=v3).pk]


TRAIN_SCRIPT = r"""
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

base_dir, output_dir, repo_id, strategy = sys.argv[1:5]
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(base_dir)
model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
# As if loaded by its HF id (the base's alias), not from this test's temporary folder.
model.peft_config["default"].base_model_name_or_path = "test-org/tiny-llama"
rows = torch.randint(0, model.config.vocab_size, (8, 16))
data = [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r} for r in rows]
args = TrainingArguments(
    output_dir=output_dir,
    max_steps=4,
    per_device_train_batch_size=2,
    learning_rate=1e-2,
    save_strategy="steps",
    save_steps=2,
    push_to_hub=True,
    hub_model_id=repo_id,
    hub_token=os.environ["HF_TOKEN"],
    hub_strategy=strategy,
    hub_always_push=True,
    report_to=[],
    use_cpu=True,
)


# Each save's push ends before training goes on. The Trainer runs it in the background and
# copies the next save into the folder being uploaded, or saves the final model there before
# waiting for it (Trainer.push_to_hub): on a busy machine an upload then reads the next
# weights, which is the Trainer's race, not the hub's.
class OnePushAtATime(Trainer):
    def _push_from_checkpoint(self, checkpoint_folder):
        super()._push_from_checkpoint(checkpoint_folder)
        self._finish_current_push()


trainer = OnePushAtATime(model=model, args=args, train_dataset=data)
trainer.train()
trainer.push_to_hub(commit_message="end of training")
"""


@pytest.mark.slow  # trains in a subprocess: about a minute
@pytest.mark.parametrize("strategy", ["end", "every_save"])
def test_trainer_push_to_hub(live_server, tiny_base, tiny_base_dir, alice, tmp_path, strategy, monkeypatch):
    """``TrainingArguments(push_to_hub=True)``: the Trainer's pushes carry training_args.bin (a
    pickle) and its output folder; the hub tells the client to skip that state and keeps the
    adapter. ``end``: one version, with the Trainer's card. ``every_save``: one per save (each
    push ends before training goes on: see OnePushAtATime), then the final push, which adds
    the card to the last save's weights; with no worker free meanwhile, only the final push is
    evaluated (the older jobs are cancelled when claimed)."""
    from django.core.management import call_command

    from evaluator import lifecycle
    from evaluator.models import EvaluationJob
    from evaluator.tasks import run_evaluation_job

    call_command("evaluator_install_suites", verbosity=0)
    queued: list[int] = []  # no worker: the jobs wait in the queue until the training ends
    monkeypatch.setattr(run_evaluation_job, "apply_async", lambda args, **kwargs: queued.append(args[0]))
    output = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, str(tiny_base_dir), str(output), REPO, strategy],
        env=_client_env(live_server, alice, tmp_path / "hf-home"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (output / "training_args.bin").is_file() and list(output.glob("checkpoint-*"))
    versions = _versions(alice)[::-1]  # oldest first
    for version in versions:
        assert {"adapter_config.json", "adapter_model.safetensors"} <= _files(version)
        assert not any(path == "training_args.bin" or path.startswith("checkpoint-") for path in _files(version))
    last = versions[-1]
    assert last["commit_title"] == "end of training"
    assert "README.md" in _files(last) and last["readme"]
    if strategy == "end":
        assert len(versions) == 1
    else:
        titles = [v["commit_title"] for v in versions]
        assert titles == ["Training in progress, step 2", "Training in progress, step 4", "end of training"]
        step2, step4, final = ({f["path"]: f["sha256"] for f in v["files"]} for v in versions)
        assert step2["adapter_model.safetensors"] != step4["adapter_model.safetensors"]
        assert final["adapter_model.safetensors"] == step4["adapter_model.safetensors"]
    assert len(queued) == len(versions)  # one job per version (one active domain suite)
    started = [lifecycle.job_start(job_id=pk) for pk in queued]
    assert [job.version.number if job else None for job in started] == [None] * (len(versions) - 1) + [last["version"]]
    for job in EvaluationJob.objects.filter(pk__in=queued[:-1]):
        assert job.status == "cancelled" and f"v{last['version']} of {REPO} was pushed meanwhile" in job.reasons[0]


def test_training_state_in_a_pushed_folder_is_skipped_not_refused(hub, tiny_base, alice, lora_dir, tmp_path):
    """A Trainer's output folder: the pickle and checkpoints are left out, the adapter kept."""
    import shutil

    folder = tmp_path / "out"
    shutil.copytree(lora_dir, folder)
    (folder / "training_args.bin").write_bytes(b"\x80\x04not really a pickle")
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"\x80\x04state")
    (folder / "checkpoint-2" / "adapter_config.json").write_text("{}")
    (folder / "runs").mkdir()
    (folder / "runs" / "events.out.tfevents").write_bytes(b"tb")
    api = _api(hub, alice)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=folder)
    (version,) = _versions(alice)
    assert _files(version) == {p.name for p in lora_dir.iterdir()}
    sent = [url for method, url, _ in hub.calls if method == "POST" and "/commit/" in url]
    assert len(sent) == 1
