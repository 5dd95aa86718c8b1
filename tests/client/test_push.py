"""Pushing adapters: the CLI on freshly trained adapters, the Python API, progress, file choice."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

import pefthub
from pefthub.files import WEIGHTS_NAME, select_files
from pefthub.multipart import MultipartBody, Part
from tests.client.conftest import REPO_ROOT, copy_adapter, run_cli, versions_of
from tests.client.training import train_and_save

pytestmark = pytest.mark.django_db(transaction=True)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_stored(full_name: str, number: int, folder) -> dict:
    """The hub holds exactly the folder's adapter files as ``number``."""
    from hub.models import AdapterVersion

    version = AdapterVersion.objects.get(adapter__name=full_name.split("/")[1], number=number)
    stored = {f.path: f.blob_id for f in version.files.all()}
    assert stored == {p.name: _sha(p) for p in select_files(folder)}
    return stored


def test_cli_pushes_an_adapter_trained_on_the_tiny_base(cli_env, hub, tiny_base_dir, tmp_path):
    folder = train_and_save(tiny_base_dir, tmp_path, steps=3)

    done = run_cli(
        cli_env,
        "push",
        str(folder),
        "alice/support-bot",
        "--base-model",
        "tiny-llama",
        "--task-tag",
        "qa",
        "--license",
        "apache-2.0",
        "--alias",
        "candidate",
        "--metadata",
        '{"num_training_examples": 6, "extra": {"note": "cli"}}',
    )

    assert done.returncode == 0, done.stderr
    assert "alice/support-bot v1 (new version" in done.stdout
    assert f"evaluation: {hub}/api/v1/adapters/alice/support-bot/versions/1/ (status: pending)" in done.stdout
    assert versions_of("alice/support-bot") == [1]
    _assert_stored("alice/support-bot", 1, folder)

    from hub.models import AdapterVersion

    version = AdapterVersion.objects.get(adapter__name="support-bot", number=1)
    assert version.base_model.name == "tiny-llama"
    assert [t.name for t in version.task_tags.all()] == ["qa"]
    assert version.license == "apache-2.0"
    assert version.num_training_examples == 6
    assert version.metadata["note"] == "cli"
    assert sorted(a.name for a in version.aliases.all()) == ["candidate", "latest"]


@pytest.mark.slow
def test_cli_pushes_an_adapter_trained_on_smollm2(live_server, alice, smollm2, tmp_path, cli_env):
    folder = train_and_save(smollm2.local_path, tmp_path, steps=2, examples=4)

    done = run_cli(
        cli_env,
        "push",
        str(folder),
        "alice/smol-bot",
        "--base-model",
        "smollm2-135m-instruct",
        "--no-progress",
    )

    assert done.returncode == 0, done.stderr
    assert "alice/smol-bot v1 (new version" in done.stdout
    assert versions_of("alice/smol-bot") == [1]
    _assert_stored("alice/smol-bot", 1, folder)


def test_pushing_the_same_files_again_returns_the_existing_version(client, lora_dir, capsys):
    first = client.push(lora_dir, "alice/repeat")
    again = pefthub.push(lora_dir, "alice/repeat", endpoint=client.endpoint, token=client.token)

    assert (first.version, first.created) == (1, True)
    assert (again.version, again.created) == (1, False)
    assert again.content_hash == first.content_hash
    assert versions_of("alice/repeat") == [1]
    assert "alice/repeat v1 (unchanged: same files as the newest version" in capsys.readouterr().out


def test_push_creates_a_missing_adapter_with_its_settings(client, hub, lora_dir, lora_dir_2):
    client.push(lora_dir, "alice/secret", private=True, description="internal")
    # The settings apply on creation only; a later push leaves them alone.
    second = client.push(lora_dir_2, "alice/secret", private=False, aliases=["prod"])

    adapter = client.get_adapter("alice/secret")
    assert (adapter["private"], adapter["description"], adapter["version_count"]) == (True, "internal", 2)
    assert second.version == 2
    assert client.get_version("alice/secret@prod")["version"] == 2
    with pefthub.Client(hub, progress=False) as anonymous, pytest.raises(pefthub.NotFoundError):
        anonymous.get_adapter("alice/secret")


def test_push_leaves_out_trainer_state_and_sends_weights_last(client, lora_dir, tmp_path):
    folder = copy_adapter(lora_dir, tmp_path / "checkpoint-10")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "trainer_state.json"):
        (folder / name).write_bytes(b"not for the hub")
    (folder / ".hidden.json").write_text("{}")

    chosen = select_files(folder)
    result = client.push(folder, "alice/from-checkpoint")

    assert chosen[-1].name == WEIGHTS_NAME
    assert sorted(f["path"] for f in result.data["files"]) == sorted(p.name for p in lora_dir.iterdir())


def test_push_shows_a_progress_bar_of_the_bytes_sent(client, lora_dir, capsys):
    from tqdm import tqdm

    result = client.push(lora_dir, "alice/progress", progress=True)

    # The bar's total is the request body: every file plus the multipart framing.
    body = MultipartBody([Part("files", path=p) for p in select_files(lora_dir)])
    total = tqdm.format_sizeof(len(body), divisor=1024)
    bars = capsys.readouterr().err.replace("\r", "\n").split("\n")
    assert result.created
    assert any(b.startswith("push alice/progress: 100%") and f" {total}/{total} " in b for b in bars), bars


def test_multipart_body_streams_exactly_what_it_announces(lora_dir):
    import email.parser

    seen: list[int] = []
    parts = [Part("metadata", value='{"license": "mit"}')] + [Part("files", path=p) for p in select_files(lora_dir)]
    body = MultipartBody(parts, on_read=seen.append, chunk_size=1000)

    raw = b""
    while chunk := body.read(777):
        raw += chunk

    assert len(raw) == len(body) == sum(seen) == body.bytes_read
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {body.content_type}\r\n\r\n".encode() + raw)
    got = {
        (
            part.get_param("filename", header="content-disposition")
            or part.get_param("name", header="content-disposition")
        ): part.get_payload(decode=True)
        for part in message.get_payload()
    }
    assert got["metadata"] == b'{"license": "mit"}'
    for path in lora_dir.iterdir():
        assert got[path.name] == path.read_bytes()


def test_import_pefthub_does_not_import_torch_or_transformers():
    code = "import sys, pefthub; print([m for m in ('torch', 'transformers', 'django') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert done.stdout.strip() == "[]"
