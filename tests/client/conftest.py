"""The client against a real hub: pytest-django's live server, real users and tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pefthub import Client

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub(live_server, alice, tiny_base):
    """The live hub's address, with alice (token, namespace `alice`) and the tiny base."""
    return live_server.url


@pytest.fixture
def client(hub, alice) -> Client:
    with Client(hub, alice.token, backoff=0.05, progress=False) as c:
        yield c


@pytest.fixture
def cli_env(hub, alice, tmp_path) -> dict[str, str]:
    """Environment for a CLI subprocess: the live hub, alice's token, an empty home."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEFTHUB_", "XDG_CONFIG_HOME", "DJANGO"))}
    env.update(
        PEFTHUB_ENDPOINT=hub,
        PEFTHUB_TOKEN=alice.token,
        HOME=str(home),
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``pefthub ARGS…`` as a real process (the console script's module)."""
    return subprocess.run(
        [sys.executable, "-m", "pefthub.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """``pefthub ARGS…`` started in the background; ``.communicate()`` ends it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pefthub.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def versions_of(full_name: str) -> list[int]:
    from hub.models import AdapterVersion

    namespace, name = full_name.split("/")
    return sorted(
        AdapterVersion.objects.filter(adapter__namespace__name=namespace, adapter__name=name).values_list(
            "number", flat=True
        )
    )


def copy_adapter(src: Path, dest: Path, **config_changes) -> Path:
    """A copy of an adapter folder, with adapter_config.json keys changed."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file():
            (dest / path.name).write_bytes(path.read_bytes())
    if config_changes:
        config = json.loads((dest / "adapter_config.json").read_text())
        config.update(config_changes)
        (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest
