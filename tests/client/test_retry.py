"""A dropped connection mid-upload: the client sends the upload again, and the hub ends
up with exactly one version, whether the first try died before the hub had the whole
body or after it stored the version."""

from __future__ import annotations

import socket

import pytest

import pefthub
from tests.client.conftest import run_cli, versions_of
from tests.client.proxy import CuttingProxy

pytestmark = pytest.mark.django_db(transaction=True)


def _client(url: str, token: str, **kwargs) -> pefthub.Client:
    return pefthub.Client(url, token, backoff=0.05, progress=False, **kwargs)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda length: length // 2, id="half-way"),
        pytest.param(lambda length: length - 2000, id="inside-the-weights"),
        pytest.param(lambda length: length - 10, id="inside-the-closing-boundary"),
        pytest.param(lambda length: length - 2, id="all-but-the-last-two-bytes"),
    ],
)
def test_upload_cut_off_before_the_hub_had_the_whole_body(hub, alice, lora_dir, cut):
    with CuttingProxy(hub, "request", cut=cut) as proxy, _client(proxy.url, alice.token) as client:
        result = client.push(lora_dir, "alice/flaky")

    assert proxy.cuts == 1 and proxy.uploads_seen == 2
    assert result.version == 1 and result.tries == 2
    assert versions_of("alice/flaky") == [1]
    # What the hub answered to the cut-off try: unless only the closing bytes were lost,
    # it lacked the weights (sent last) and refused the upload as a whole.
    [dropped] = proxy.dropped_responses
    if result.created:
        assert b" 422 " in dropped or b" 400 " in dropped, dropped


def test_answer_lost_after_the_hub_stored_the_version(hub, alice, lora_dir):
    with CuttingProxy(hub, "response") as proxy, _client(proxy.url, alice.token) as client:
        result = client.push(lora_dir, "alice/flaky")

    [dropped] = proxy.dropped_responses
    assert b" 201 " in dropped  # the first try made the version ...
    assert proxy.cuts == 1 and proxy.uploads_seen == 2
    # ... and the retry got it back instead of making a second one.
    assert (result.version, result.created, result.tries) == (1, False, 2)
    assert versions_of("alice/flaky") == [1]
    assert "an earlier try got through" in result.summary()


def test_cli_push_survives_a_lost_answer(hub, alice, lora_dir, cli_env):
    with CuttingProxy(hub, "response") as proxy:
        done = run_cli({**cli_env, "PEFTHUB_ENDPOINT": proxy.url}, "push", str(lora_dir), "alice/flaky")

    assert done.returncode == 0, done.stderr
    assert proxy.cuts == 1
    assert "retrying" in done.stderr
    assert "alice/flaky v1 (stored" in done.stdout
    assert f"evaluation: {proxy.url}/api/v1/adapters/alice/flaky/versions/1/" in done.stdout
    assert versions_of("alice/flaky") == [1]


def test_unavailable_hub_is_retried(hub, alice, lora_dir):
    with CuttingProxy(hub, "unavailable") as proxy, _client(proxy.url, alice.token) as client:
        result = client.push(lora_dir, "alice/flaky")

    assert proxy.cuts == 1
    assert (result.version, result.created, result.tries) == (1, True, 2)
    assert versions_of("alice/flaky") == [1]


def test_no_retries_left_raises_connection_failed(hub, alice, lora_dir):
    with (
        CuttingProxy(hub, "response") as proxy,
        _client(proxy.url, alice.token, retries=0) as client,
        pytest.raises(pefthub.ConnectionFailed, match=f"could not reach the hub at {proxy.url}"),
    ):
        client.push(lora_dir, "alice/flaky")

    # The hub did store it; pushing again hands it back.
    assert versions_of("alice/flaky") == [1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_hub(lora_dir, cli_env):
    url = f"http://127.0.0.1:{_closed_port()}"
    with _client(url, "t", retries=1) as client, pytest.raises(pefthub.ConnectionFailed) as caught:
        client.whoami()
    assert caught.value.status is None
    assert "after 2 tries" in caught.value.message

    done = run_cli({**cli_env, "PEFTHUB_ENDPOINT": url}, "--retries", "0", "push", str(lora_dir), "alice/x")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: could not reach the hub at {url}")
