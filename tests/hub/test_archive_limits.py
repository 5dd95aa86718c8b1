"""Archive uploads are judged by their index before any member is inflated (issue 16, finding 6)."""

from __future__ import annotations

import io
import struct
import tarfile
import tracemalloc
import zipfile
from contextlib import ExitStack

import pytest

from hub.storage import archives
from tests.utils import folder_files, upload_archive, zip_bytes

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
# The review's bomb: thirty 7.5 MiB members that compress to a few hundred KB in all.
BOMB_MEMBERS = 30
BOMB_MEMBER_BYTES = 7 * MIB + MIB // 2


def _bomb_entries(**extra: bytes) -> dict[str, bytes]:
    zeros = bytes(BOMB_MEMBER_BYTES)
    return {**extra, **{f"notes-{i:02d}.txt": zeros for i in range(BOMB_MEMBERS)}}


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _targz(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    content = _zip(_bomb_entries())
    assert len(content) < 400_000  # small on the wire, 225 MiB unpacked
    return content


@pytest.fixture(scope="module")
def targz_bomb() -> bytes:
    content = _targz(_bomb_entries())
    assert len(content) < 1_000_000
    return content


@pytest.fixture
def adapter(alice_client, tiny_base):
    response = alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "bombed"}, format="json")
    assert response.status_code == 201, response.json()
    return "alice/bombed"


@pytest.fixture
def member_reads(monkeypatch) -> list[str]:
    """Every member whose data is opened, zip or tar."""
    opened: list[str] = []
    zip_open, tar_extract = zipfile.ZipFile.open, tarfile.TarFile.extractfile

    def spy_zip(self, name, mode="r", *args, **kwargs):
        if mode == "r":  # writestr() opens members to write them
            opened.append(getattr(name, "filename", name))
        return zip_open(self, name, mode, *args, **kwargs)

    def spy_tar(self, member):
        opened.append(getattr(member, "name", member))
        return tar_extract(self, member)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy_zip)
    monkeypatch.setattr(tarfile.TarFile, "extractfile", spy_tar)
    return opened


def _upload_measured(client, adapter: str, name: str, content: bytes):
    tracemalloc.start()
    try:
        response = upload_archive(client, adapter, name, content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, peak


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_bomb_over_the_upload_limit_is_refused_before_inflating(
    settings, alice_client, adapter, zip_bomb, targz_bomb, member_reads, blob_dir, upload_tmp_dir, kind
):
    settings.PEFTHUB_MAX_UPLOAD_BYTES = 100 * MIB  # the 225 MiB the index declares is over it
    content = zip_bomb if kind == "zip" else targz_bomb
    response, peak = _upload_measured(alice_client, adapter, f"bomb.{kind}", content)
    assert response.status_code == 413, response.json()
    message = response.json()["error"]["message"]
    assert "unpacks to" in message and "limit" in message
    assert member_reads == []
    # Nothing near one member's 7.5 MiB was ever held.
    assert peak < 4 * MIB, peak
    assert not any(blob_dir.rglob("*")) and not any(upload_tmp_dir.rglob("*"))


def test_member_over_the_file_limit_is_refused_before_inflating(settings, alice_client, adapter, member_reads):
    settings.PEFTHUB_MAX_FILE_BYTES = 4 * MIB
    response = upload_archive(alice_client, adapter, "bomb.zip", _zip({"README.md": bytes(5 * MIB)}))
    assert response.status_code == 413
    assert "README.md" in response.json()["error"]["message"]
    assert member_reads == []


def test_too_many_members_are_refused_from_the_index(alice_client, adapter, member_reads):
    entries = {f"out/n{i:03d}.txt": b"x" for i in range(archives.MAX_MEMBERS + 1)}
    for name, content in (("many.zip", zip_bytes(entries)), ("many.tar.gz", _targz(entries))):
        response = upload_archive(alice_client, adapter, name, content)
        assert response.status_code == 413, name
        assert f"more than {archives.MAX_MEMBERS} members" in response.json()["error"]["message"]
    assert member_reads == []


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ({"README.md": b"# hi"}, "has no adapter_config.json"),
        ({"adapter_config.json": b"{}", "optimizer.pt": b"x"}, "pickle"),
        ({"out/sub/adapter_config.json": b"{}", "out/adapter_model.safetensors": b"x"}, "flat"),
    ],
    ids=["required-file", "kind", "nested-name"],
)
def test_names_and_required_files_are_checked_from_the_index(alice_client, adapter, member_reads, entries, words):
    response = upload_archive(alice_client, adapter, "bad.zip", zip_bytes(entries))
    assert response.status_code == 422
    assert words in response.json()["error"]["message"]
    assert member_reads == []


def test_member_that_inflates_past_its_declared_size_is_refused(alice_client, adapter, lora_dir, blob_dir):
    content = bytearray(_zip({**folder_files(lora_dir), "README.md": b"a" * MIB}))
    # Make the index (local header and central directory) claim README.md is 100 bytes.
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := content.find(signature, start)) >= 0:
            name_len = struct.unpack_from("<H", content, at + (26 if signature == b"PK\x03\x04" else 28))[0]
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if content[name_at : name_at + name_len] == b"README.md":
                struct.pack_into("<I", content, at + size_at, 100)
            start = at + 4
    response = upload_archive(alice_client, adapter, "liar.zip", bytes(content))
    assert response.status_code == 422
    assert not any(blob_dir.rglob("*"))


def test_accepted_archive_keeps_its_members_out_of_memory(settings, tmp_path, lora_dir):
    """A legitimate large archive unpacks to disk: memory stays far below its 225 MiB."""
    content = _zip(_bomb_entries(**folder_files(lora_dir)))
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    with ExitStack() as stack:
        tracemalloc.start()
        try:
            files, sizes = archives.unpack_archive(
                stack, "big.zip", io.BytesIO(content), max_file_bytes=512 * MIB, max_upload_bytes=1024 * MIB
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert sizes["notes-00.txt"] == BOMB_MEMBER_BYTES and len(files) == BOMB_MEMBERS + len(folder_files(lora_dir))
        assert files["notes-29.txt"].read(16) == bytes(16)
    assert peak < 32 * MIB, peak
