"""Uploading adapters over REST: what is kept, and every way an upload is refused."""

from __future__ import annotations

import pytest

from hub.models import AdapterVersion, AuditEvent, Blob, VersionFile
from hub.storage.gc import blobs_collect_garbage
from tests.factories import TINY, save_adapter
from tests.hub.refusals import REFUSALS, tensors_of
from tests.utils import edit_config, folder_files, tar_bytes, upload, upload_archive, zip_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter(alice_client, tiny_base):
    response = alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "support-bot"}, format="json")
    assert response.status_code == 201, response.json()
    return "alice/support-bot"


# --- what a good upload keeps ------------------------------------------------------------------
def test_lora_upload_creates_version_with_typed_card(alice_client, adapter, lora_dir, blob_dir):
    response = upload(
        alice_client,
        adapter,
        folder_files(lora_dir),
        metadata={
            "task_tags": ["qa", "Support"],
            "license": "apache-2.0",
            "datasets": ["acme/faq"],
            "training_time_seconds": 93.5,
            "training_hardware": "2x CPU",
            "num_training_examples": 200,
            "training_run_url": "https://runs.example.org/42",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["adapter"] == "alice/support-bot"
    assert body["version"] == 1
    assert len(body["content_hash"]) == 64
    assert body["status"] == "pending"
    assert body["aliases"] == ["latest"]
    card = body["card"]
    assert card["method"] == "lora"
    assert card["peft_type"] == "LORA"
    assert card["rank"] == 4
    assert card["alpha"] == 8
    assert card["target_modules"] == ["q_proj", "v_proj"]
    # 2 layers x (q: 4*64 + 64*4, v: 4*64 + 32*4) = 2 * (512 + 384)
    assert card["trainable_params"] == 1792
    assert card["task_tags"] == ["qa", "support"]
    assert card["license"] == "apache-2.0"
    assert card["num_training_examples"] == 200
    assert card["lineage"]["base_model"] == "tiny-llama"
    assert card["lineage"]["training_run_url"] == "https://runs.example.org/42"
    names = {f["path"] for f in body["files"]}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names
    assert card["size_bytes"] == sum(f["size"] for f in body["files"])
    # every file is in the blob store under its hash
    stored = {p.name for p in blob_dir.rglob("*") if p.is_file()}
    assert stored == {f["sha256"] for f in body["files"]}
    assert AuditEvent.objects.filter(kind="version.created", version_id=body["id"]).count() == 1


def test_same_files_again_return_the_same_version(alice_client, adapter, lora_dir):
    first = upload(alice_client, adapter, folder_files(lora_dir))
    again = upload(alice_client, adapter, folder_files(lora_dir))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert AdapterVersion.objects.count() == 1


def test_new_content_becomes_next_version_and_moves_latest(alice_client, adapter, lora_dir, lora_dir_2):
    upload(alice_client, adapter, folder_files(lora_dir))
    second = upload(alice_client, adapter, folder_files(lora_dir_2), aliases=["staging"])
    assert second.status_code == 201
    assert second.json()["version"] == 2
    assert second.json()["aliases"] == ["latest", "staging"]
    detail = alice_client.get(f"/api/v1/adapters/{adapter}/").json()
    assert detail["version_count"] == 2
    assert detail["latest"]["version"] == 2
    first = alice_client.get(f"/api/v1/adapters/{adapter}/versions/1/").json()
    assert first["aliases"] == []


def test_identical_blobs_are_stored_once(alice_client, alice, tiny_base, lora_dir, blob_dir):
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "twin"}, format="json")
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "twin2"}, format="json")
    upload(alice_client, "alice/twin", folder_files(lora_dir))
    upload(alice_client, "alice/twin2", folder_files(lora_dir))
    assert VersionFile.objects.count() == 2 * len(folder_files(lora_dir))
    assert Blob.objects.count() == len(folder_files(lora_dir))
    assert len([p for p in blob_dir.rglob("*") if p.is_file()]) == Blob.objects.count()


@pytest.mark.parametrize(
    ("fixture", "method", "virtual_tokens"),
    [
        ("prompt_tuning_dir", "prompt_tuning", 5),
        ("prefix_tuning_dir", "prefix_tuning", 6),
        ("p_tuning_dir", "p_tuning", 4),
    ],
)
def test_prompt_learning_uploads(request, alice_client, adapter, fixture, method, virtual_tokens):
    folder = request.getfixturevalue(fixture)
    response = upload(alice_client, adapter, folder_files(folder))
    assert response.status_code == 201, response.json()
    card = response.json()["card"]
    assert card["method"] == method
    assert card["num_virtual_tokens"] == virtual_tokens
    assert card["rank"] is None
    tensors = tensors_of(folder)
    assert card["trainable_params"] == sum(t.size for t in tensors.values())


def test_qlora_quantization_is_recorded(alice_client, adapter, lora_dir):
    response = upload(
        alice_client, adapter, folder_files(lora_dir), metadata={"quantization": {"bits": 4, "type": "nf4"}}
    )
    card = response.json()["card"]
    assert card["method"] == "qlora"
    assert card["quantization"] == {"bits": 4, "type": "nf4"}


def test_readme_front_matter_fills_card_and_is_kept(alice_client, adapter, lora_dir):
    readme = b"---\nlicense: mit\ndatasets:\n- acme/tickets\ntags:\n- support\n---\n# Support bot\n"
    response = upload(alice_client, adapter, folder_files(lora_dir, README__md=readme))
    body = response.json()
    assert body["card"]["license"] == "mit"
    assert body["card"]["datasets"] == ["acme/tickets"]
    assert body["card"]["task_tags"] == ["support"]
    assert body["readme"].endswith("# Support bot\n")


def test_readme_tags_pass_the_slug_check_api_tags_get(alice_client, adapter, lora_dir):
    # peft's own README carries `base_model:adapter:...`; free text and markup are no tags.
    readme = (
        b"---\ntags:\n- Support\n- base_model:adapter:tiny-llama\n- <b>x</b>\n- two words\n- "
        + b"x" * 65
        + b"\n---\n# Support bot\n"
    )
    response = upload(alice_client, adapter, folder_files(lora_dir, README__md=readme))
    assert response.status_code == 201, response.json()
    assert response.json()["card"]["task_tags"] == ["support"]


def test_parent_lineage(alice_client, adapter, lora_dir, lora_dir_2):
    upload(alice_client, adapter, folder_files(lora_dir))
    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "child"}, format="json")
    response = upload(
        alice_client, "alice/child", folder_files(lora_dir_2), metadata={"parent": "alice/support-bot@v1"}
    )
    assert response.json()["card"]["lineage"]["parent"] == "alice/support-bot@v1"


def test_explicit_base_model_wins_over_a_local_path(alice_client, adapter, lora_dir):
    config = edit_config(lora_dir, base_model_name_or_path="/home/trainer/out/checkpoint-500")
    files = folder_files(lora_dir, adapter_config__json=config)
    refused = upload(alice_client, adapter, files)
    assert refused.status_code == 422
    assert "base_model" in refused.json()["error"]["message"]
    accepted = upload(alice_client, adapter, files, base_model="tiny-llama")
    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["card"]["lineage"]["base_model"] == "tiny-llama"


def test_base_model_found_by_alias(alice_client, adapter, lora_dir):
    config = edit_config(lora_dir, base_model_name_or_path="TEST-ORG/Tiny-Llama")
    response = upload(alice_client, adapter, folder_files(lora_dir, adapter_config__json=config))
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_upload(alice_client, adapter, lora_dir, kind):
    entries = {f"out/{name}": content for name, content in folder_files(lora_dir).items()}
    content = tar_bytes(entries) if kind == "tar.gz" else zip_bytes(entries)
    response = upload_archive(alice_client, adapter, f"adapter.{kind}", content)
    assert response.status_code == 201, response.json()
    assert {f["path"] for f in response.json()["files"]} == set(folder_files(lora_dir))


# --- refusals: a 4xx naming what to fix, and nothing left behind --------------------------------
def _assert_nothing_kept(blob_dir, upload_tmp_dir):
    assert AdapterVersion.objects.count() == 0
    assert Blob.objects.count() == 0
    assert VersionFile.objects.count() == 0
    assert not AuditEvent.objects.filter(kind="version.created").exists()
    assert [p for p in blob_dir.rglob("*") if p.is_file()] == []
    assert list(upload_tmp_dir.iterdir()) == []


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_upload_says_what_to_fix_and_keeps_nothing(
    case, settings, alice_client, adapter, lora_dir, blob_dir, upload_tmp_dir
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # spool every upload to disk: prove temp files go
    build, status, words = REFUSALS[case]
    response = upload(alice_client, adapter, build(lora_dir))
    assert response.status_code == status, response.json()
    message = response.json()["error"]["message"]
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


def test_oversize_file_is_refused(settings, alice_client, adapter, lora_dir, blob_dir, upload_tmp_dir):
    settings.PEFTHUB_MAX_FILE_BYTES = 1000
    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert response.status_code == 413
    assert "1000" in response.json()["error"]["message"]
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


def test_oversize_upload_is_refused(settings, alice_client, adapter, lora_dir, blob_dir, upload_tmp_dir):
    total = sum(len(c) for c in folder_files(lora_dir).values())
    settings.PEFTHUB_MAX_UPLOAD_BYTES = total - 1
    response = upload(alice_client, adapter, folder_files(lora_dir))
    assert response.status_code == 413
    assert str(total - 1) in response.json()["error"]["message"]
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


@pytest.mark.parametrize("over", ["archive", "member", "unpacked total"])
def test_archive_over_a_size_limit_is_413(over, settings, alice_client, adapter, lora_dir, blob_dir, upload_tmp_dir):
    """The rule: a size limit exceeded is 413, whether by the archive, one member or their sum."""
    files = folder_files(lora_dir, README__md=b"# readme\n" * 1000)
    archive = tar_bytes(files, gz=over != "archive")
    if over == "archive":
        settings.PEFTHUB_MAX_UPLOAD_BYTES = len(archive) - 1
    elif over == "member":
        settings.PEFTHUB_MAX_FILE_BYTES = max(len(c) for c in files.values()) - 1
    else:
        settings.PEFTHUB_MAX_UPLOAD_BYTES = sum(len(c) for c in files.values()) - 1
        assert len(archive) <= settings.PEFTHUB_MAX_UPLOAD_BYTES  # small packed, too large unpacked
    response = upload_archive(alice_client, adapter, "adapter.tar.gz", archive)
    assert response.status_code == 413, response.json()
    assert response.json()["error"]["code"] == "upload_too_large"
    assert "limit" in response.json()["error"]["message"]
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


def test_shapes_of_another_base_are_refused(alice_client, adapter, tmp_path, blob_dir, upload_tmp_dir):
    """A LoRA trained on a different model that claims to be for tiny-llama."""
    from peft import LoraConfig
    from transformers import LlamaConfig, LlamaForCausalLM

    other = tmp_path / "other-base"
    LlamaForCausalLM(
        LlamaConfig(**{**TINY, "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1})
    ).save_pretrained(other)
    folder = save_adapter(
        other, tmp_path / "other-lora", LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM")
    )
    response = upload(alice_client, adapter, folder_files(folder))
    assert response.status_code == 422
    assert "shape" in response.json()["error"]["message"]
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


@pytest.mark.parametrize(
    "entries",
    [
        {"../evil.json": b"{}", "adapter_config.json": b"{}"},
        {"/etc/passwd.json": b"{}"},
        {"out/../../x.json": b"{}"},
    ],
    ids=["dotdot", "absolute", "nested-dotdot"],
)
def test_archive_that_escapes_is_refused(alice_client, adapter, entries, blob_dir, upload_tmp_dir):
    response = upload_archive(alice_client, adapter, "evil.tar.gz", tar_bytes(entries))
    assert response.status_code == 422
    assert "outside" in response.json()["error"]["message"]
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


def test_archive_with_symlink_is_refused(alice_client, adapter, lora_dir, blob_dir, upload_tmp_dir):
    content = tar_bytes(folder_files(lora_dir), links={"README.md": "/etc/passwd"})
    response = upload_archive(alice_client, adapter, "adapter.tar", content)
    assert response.status_code == 422
    assert "link" in response.json()["error"]["message"]
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


def test_failure_while_storing_leaves_no_blob(monkeypatch, alice_client, adapter, lora_dir, blob_dir, upload_tmp_dir):
    """An upload interrupted after its blobs were written rolls back rows and files alike."""

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(VersionFile.objects, "bulk_create", boom)
    with pytest.raises(RuntimeError):
        upload(alice_client, adapter, folder_files(lora_dir))
    _assert_nothing_kept(blob_dir, upload_tmp_dir)


def test_garbage_collection_removes_only_unused_content(alice, alice_client, adapter, lora_dir, blob_dir):
    """A caller's outer transaction rolled back after blobs were written: gc cleans up."""
    import io

    from django.db import transaction

    from hub import services
    from hub.models import Adapter

    kept = upload(alice_client, adapter, folder_files(lora_dir)).json()
    stray_readme = b"# stray\n"

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        files = {n: io.BytesIO(c) for n, c in folder_files(lora_dir, README__md=stray_readme).items()}
        services.adapter_version_create(
            adapter=Adapter.objects.get(name="support-bot"),
            user=alice,
            files=files,
            sizes={n: len(f.getvalue()) for n, f in files.items()},
            card=services.CardInput(),
        )
        raise Abort
    before = {p.name for p in blob_dir.rglob("*") if p.is_file()}
    assert len(before) == len(kept["files"]) + 1  # the stray README's content
    assert blobs_collect_garbage(grace_seconds=3600) == []  # too young to touch
    removed = blobs_collect_garbage(grace_seconds=0)
    assert len(removed) == 1
    after = {p.name for p in blob_dir.rglob("*") if p.is_file()}
    assert after == {f["sha256"] for f in kept["files"]}
