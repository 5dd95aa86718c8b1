"""The commit body reader: long base64 `file` lines are decoded as they stream in."""

from __future__ import annotations

import base64
import io
import json
from contextlib import ExitStack

import pytest

from hub.exceptions import HubError
from hub.hf import ndjson


def _body(*items: dict) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(item).encode() + b"\n" for item in items))


def _file(path: str, content: bytes) -> dict:
    return {"key": "file", "value": {"content": base64.b64encode(content).decode(), "path": path, "encoding": "base64"}}


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096])
def test_long_file_lines_stream_to_temporary_files(monkeypatch, chunk):
    monkeypatch.setattr(ndjson, "CHUNK", chunk)
    monkeypatch.setattr(ndjson, "SHORT_LINE", 70)
    big, small = bytes(range(256)) * 3, b"{}"
    header = {"key": "header", "value": {"summary": "s", "description": ""}}
    body = _body(
        header, _file("big.json", big), _file("small.json", small), {"key": "deletedFile", "value": {"path": "x"}}
    )
    with ExitStack() as stack:
        seen = []
        for item, spooled in ndjson.items(body, limit=10**6, stack=stack):
            if item["key"] == "file":
                handle, size = spooled or ndjson.decode(item["value"]["content"], stack)
                seen.append((item["value"]["path"], handle.read(), size))
            else:
                seen.append((item["key"], None, None))
    assert seen == [
        ("header", None, None),
        ("big.json", big, len(big)),
        ("small.json", small, 2),
        ("deletedFile", None, None),
    ]


def test_a_long_line_that_is_not_a_file_or_a_body_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(ndjson, "SHORT_LINE", 10)
    monkeypatch.setattr(ndjson, "CHUNK", 5)
    with ExitStack() as stack, pytest.raises(HubError, match="must be a base64 `file` line"):
        list(ndjson.items(_body({"key": "header", "value": {"summary": "x" * 100}}), limit=10**6, stack=stack))
    with ExitStack() as stack, pytest.raises(HubError, match="over 20 bytes"):
        list(ndjson.items(_body(_file("a.json", b"0" * 100)), limit=20, stack=stack))
    with ExitStack() as stack, pytest.raises(HubError, match="not valid base64"):
        bad = io.BytesIO(b'{"key": "file", "value": {"content": "!!!!' + b"A" * 40 + b'", "path": "a"}}\n')
        list(ndjson.items(bad, limit=10**6, stack=stack))


def test_a_commit_drops_training_state_a_client_sends_anyway():
    """A client that ignores the preupload's shouldIgnore: the Trainer's state is left out."""
    from hub.hf import commits

    assert [commits.is_training_state(p) for p in ("training_args.bin", "checkpoint-2/a.json", "runs/x", "a.json")] == [
        True,
        True,
        True,
        False,
    ]
    body = _body(
        {"key": "header", "value": {"summary": "step 2", "description": ""}},
        _file("adapter_config.json", b"{}"),
        _file("training_args.bin", b"\x80\x04pickle"),
        _file("last-checkpoint/optimizer.pt", b"\x80\x04state"),
        {"key": "lfsFile", "value": {"path": "checkpoint-2/adapter_model.safetensors", "oid": "a" * 64}},
    )
    with ExitStack() as stack:
        commit = commits._parse(body, stack)
        assert list(commit.added) == ["adapter_config.json"] and commit.lfs_oids == {}
        assert commit.dropped_oids == ["a" * 64]
