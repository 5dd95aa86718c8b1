"""pull, ls, alias, status, login and whoami, through the Python API and the CLI."""

from __future__ import annotations

import json
import stat

import pytest

import pefthub
from tests.client.conftest import run_cli

pytestmark = pytest.mark.django_db(transaction=True)


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_pull_writes_the_version_files_and_resumes(client, lora_dir, lora_dir_2, tmp_path):
    client.push(lora_dir, "alice/bot")
    client.push(lora_dir_2, "alice/bot")

    latest = client.pull("alice/bot", tmp_path / "latest")
    first = pefthub.pull("alice/bot@v1", tmp_path / "first", endpoint=client.endpoint, token=client.token)

    assert (latest.version, first.version) == (2, 1)
    assert _files(tmp_path / "latest") == _files(lora_dir_2)
    assert _files(tmp_path / "first") == _files(lora_dir)

    # A pull into a folder that has some of the files fetches only what is missing or wrong.
    (tmp_path / "first" / "README.md").write_text("edited")
    (tmp_path / "first" / "adapter_config.json").unlink()
    again = client.pull("alice/bot", tmp_path / "first", ref=1)
    assert sorted(again.downloaded) == ["README.md", "adapter_config.json"]
    assert _files(tmp_path / "first") == _files(lora_dir)
    assert not [p for p in (tmp_path / "first").iterdir() if p.name.startswith(".")]


def test_cli_pull(client, lora_dir, cli_env, tmp_path):
    client.push(lora_dir, "alice/bot", aliases=["prod"])

    done = run_cli(cli_env, "pull", "alice/bot@prod", str(tmp_path / "out"))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"alice/bot v1 -> {tmp_path / 'out'} (3 downloaded)"
    assert _files(tmp_path / "out") == _files(lora_dir)


def test_cli_ls_lists_adapters_and_versions(client, lora_dir, lora_dir_2, cli_env):
    client.push(lora_dir, "alice/bot")
    client.push(lora_dir_2, "alice/bot", aliases=["prod"])
    client.push(lora_dir, "alice/other", private=True)

    catalog = run_cli(cli_env, "ls", "--namespace", "alice")
    versions = run_cli(cli_env, "ls", "alice/bot")
    as_json = run_cli(cli_env, "ls", "alice/bot", "--json")
    search = run_cli(cli_env, "ls", "-q", "nothing-like-this")

    assert catalog.returncode == versions.returncode == as_json.returncode == 0, catalog.stderr
    rows = catalog.stdout.splitlines()
    assert rows[0].split() == ["ADAPTER", "LATEST", "STATUS", "METHOD", "VISIBILITY", "UPDATED"]
    assert sorted(r.split()[:5] for r in rows[1:]) == [
        ["alice/bot", "v2", "pending", "lora", "public"],
        ["alice/other", "v1", "pending", "lora", "private"],
    ]
    rows = versions.stdout.splitlines()
    assert [r.split()[0] for r in rows] == ["VERSION", "v2", "v1"]
    assert "latest,prod" in rows[1]
    assert [v["version"] for v in json.loads(as_json.stdout)] == [2, 1]
    assert search.stdout.strip() == "no adapters found"


def test_cli_alias_set_list_delete(client, lora_dir, lora_dir_2, cli_env):
    client.push(lora_dir, "alice/bot")
    client.push(lora_dir_2, "alice/bot")

    set_ = run_cli(cli_env, "alias", "alice/bot", "prod", "1")
    listed = run_cli(cli_env, "alias", "alice/bot")
    moved = run_cli(cli_env, "alias", "alice/bot", "prod", "latest")
    deleted = run_cli(cli_env, "alias", "alice/bot", "prod", "--delete")

    assert set_.returncode == 0, set_.stderr
    assert set_.stdout.strip() == "alice/bot: prod -> v1"
    assert [r.split()[:2] for r in listed.stdout.splitlines()] == [
        ["ALIAS", "VERSION"],
        ["latest", "v2"],
        ["prod", "v1"],
    ]
    assert moved.stdout.strip() == "alice/bot: prod -> v2"
    assert deleted.returncode == 0
    assert [a["name"] for a in client.list_aliases("alice/bot")] == ["latest"]


def test_status_shows_the_verdict_before_any_evaluation_job(client, lora_dir, cli_env):
    from hub.models import AdapterVersion

    client.push(lora_dir, "alice/bot")
    pending = run_cli(cli_env, "status", "alice/bot")

    AdapterVersion.objects.filter(adapter__name="bot").update(
        status="rejected", status_reasons=["worse than the RAG baseline on qa"]
    )
    rejected = run_cli(cli_env, "status", "alice/bot@v1")
    as_json = run_cli(cli_env, "status", "alice/bot", "--json")
    status = client.evaluation_status("alice/bot")

    assert pending.returncode == 0, pending.stderr
    lines = pending.stdout.splitlines()
    assert lines[0] == "alice/bot v1: pending"
    assert lines[1].startswith("evaluation: no job yet; the status changes once the evaluation service")
    assert lines[-1] == f"url: {client.endpoint}/api/v1/adapters/alice/bot/versions/1/"
    assert rejected.stdout.splitlines()[:2] == [
        "alice/bot v1: rejected",
        "  - worse than the RAG baseline on qa",
    ]
    assert json.loads(as_json.stdout)["status"] == "rejected"
    assert (status.status, status.reasons, status.jobs, status.outcome) == (
        "rejected",
        ["worse than the RAG baseline on qa"],
        [],
        "rejected",
    )


def test_login_saves_the_token_and_whoami_uses_it(alice, cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "PEFTHUB_TOKEN"}

    before = run_cli(env, "whoami")
    login = run_cli(env, "login", stdin=alice.token + "\n")
    after = run_cli(env, "whoami")
    as_json = run_cli(env, "whoami", "--json")

    assert before.returncode == 1
    assert before.stderr.strip().startswith("error: no token: set PEFTHUB_TOKEN")
    assert login.returncode == 0, login.stderr
    saved = tmp_path / "home" / ".config" / "pefthub" / "token"
    assert login.stdout.strip() == f"logged in to {env['PEFTHUB_ENDPOINT']} as alice; token saved to {saved}"
    assert saved.read_text().strip() == alice.token
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert after.stdout.splitlines() == ["alice", "  alice (owner)"]
    assert json.loads(as_json.stdout) == {
        "username": "alice",
        "namespaces": [{"name": "alice", "role": "owner"}],
    }


def test_login_refuses_a_bad_token_and_saves_nothing(alice, cli_env, tmp_path):
    done = run_cli(cli_env, "login", "not-a-token")

    assert done.returncode == 1
    assert done.stderr.startswith("error: invalid or revoked token")
    assert not (tmp_path / "home" / ".config" / "pefthub" / "token").exists()


def test_token_precedence(alice, bob, hub, monkeypatch, tmp_path):
    from pefthub.config import save_token

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PEFTHUB_TOKEN", raising=False)
    monkeypatch.setenv("PEFTHUB_ENDPOINT", hub)
    save_token(bob.token)
    assert pefthub.Client().whoami()["username"] == "bob"
    monkeypatch.setenv("PEFTHUB_TOKEN", alice.token)
    assert pefthub.Client().whoami()["username"] == "alice"
    assert pefthub.Client(token=bob.token).whoami()["username"] == "bob"
