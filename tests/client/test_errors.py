"""Each API error arrives as its own exception, with the hub's message, file and field."""

from __future__ import annotations

import json

import pytest

import pefthub
from tests.client.conftest import copy_adapter, run_cli, versions_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_invalid_folder_is_an_upload_rejected_error_naming_the_file(client, lora_dir, tmp_path):
    folder = copy_adapter(lora_dir, tmp_path / "broken")
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])  # the header promises more than the file holds

    with pytest.raises(pefthub.UploadRejectedError) as caught:
        client.push(folder, "alice/broken")

    error = caught.value
    assert (error.status, error.code, error.file) == (422, "upload_rejected", "adapter_model.safetensors")
    assert error.message.startswith("adapter_model.safetensors")
    assert str(error) == error.message
    assert versions_of("alice/broken") == []


def test_wrong_rank_names_the_tensor_and_the_fix(client, lora_dir, tmp_path):
    folder = copy_adapter(lora_dir, tmp_path / "rank", r=8)

    with pytest.raises(pefthub.UploadRejectedError, match=r"has shape \[4, 64\].*`r` is 8") as caught:
        client.push(folder, "alice/rank")
    assert caught.value.file == "adapter_model.safetensors"


def test_pickle_weights_are_refused_with_how_to_convert(client, lora_dir, tmp_path):
    folder = copy_adapter(lora_dir, tmp_path / "pickle")
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04pickle")

    with pytest.raises(pefthub.UploadRejectedError, match="pickle files") as caught:
        client.push(folder, "alice/pickle")
    assert (caught.value.file, caught.value.field) == ("adapter_model.bin", "files")


def test_cli_prints_the_hub_message_on_one_line(cli_env, lora_dir, tmp_path):
    folder = copy_adapter(lora_dir, tmp_path / "nobase", base_model_name_or_path="somewhere/unknown")

    done = run_cli(cli_env, "push", str(folder), "alice/nobase")

    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "somewhere/unknown" in line
    assert done.stdout == ""


def test_file_over_the_size_limit(client, lora_dir, settings):
    settings.PEFTHUB_MAX_FILE_BYTES = 2048

    with pytest.raises(pefthub.UploadRejectedError, match="the limit per file is") as caught:
        client.push(lora_dir, "alice/big")
    assert (caught.value.status, caught.value.code) == (413, "upload_too_large")


def test_bad_token_is_an_authentication_error(hub):
    with (
        pefthub.Client(hub, "not-a-token", progress=False) as client,
        pytest.raises(pefthub.AuthenticationError, match="invalid or revoked token") as caught,
    ):
        client.whoami()
    assert caught.value.status == 401


def test_no_token_is_an_authentication_error(hub, monkeypatch, tmp_path):
    monkeypatch.delenv("PEFTHUB_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pefthub.Client(hub, progress=False) as client, pytest.raises(pefthub.AuthenticationError):
        client.whoami()


def test_pushing_into_another_namespace_is_permission_denied(hub, bob, lora_dir):
    with (
        pefthub.Client(hub, bob.token, progress=False) as client,
        pytest.raises(pefthub.PermissionDeniedError, match="user `bob` may not write to namespace `alice`") as caught,
    ):
        client.push(lora_dir, "alice/not-bobs")
    assert (caught.value.status, caught.value.code) == (403, "permission_denied")


def test_missing_things_are_not_found(client, lora_dir):
    with pytest.raises(pefthub.NotFoundError, match="namespace `nobody` not found"):
        client.push(lora_dir, "nobody/bot")
    with pytest.raises(pefthub.NotFoundError, match="adapter `alice/nothing` not found"):
        client.get_version("alice/nothing")
    client.push(lora_dir, "alice/bot")
    with pytest.raises(pefthub.NotFoundError) as caught:
        client.get_version("alice/bot@v7")
    assert caught.value.code == "revision_not_found"
    assert "alice/bot has no version `v7`" in caught.value.message


def test_existing_adapter_is_a_conflict(client):
    client.create_adapter("alice/twice")
    with pytest.raises(pefthub.ConflictError, match="adapter `alice/twice` already exists") as caught:
        client.create_adapter("alice/twice")
    assert caught.value.field == "name"
    assert client.create_adapter("alice/twice", exist_ok=True) is None


def test_invalid_alias_is_an_invalid_request(client, lora_dir):
    client.push(lora_dir, "alice/bot")
    with pytest.raises(pefthub.InvalidRequestError, match="alias `v3` is not valid") as caught:
        client.set_alias("alice/bot", "v3", 1)
    assert (caught.value.status, caught.value.field) == (400, "alias")


def test_invalid_metadata_is_an_invalid_request(client, lora_dir):
    with pytest.raises(pefthub.InvalidRequestError, match="num_training_examples") as caught:
        client.push(lora_dir, "alice/bot", metadata={"num_training_examples": -1})
    assert caught.value.field == "num_training_examples"


def test_server_crash_is_a_server_error_and_not_retried(client, lora_dir, monkeypatch):
    from hub import services

    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("boom")

    client.push(lora_dir, "alice/bot")
    monkeypatch.setattr(services, "alias_set", broken)
    with pytest.raises(pefthub.ServerError, match="HTTP 500") as caught:
        client.set_alias("alice/bot", "prod", 1)
    assert caught.value.status == 500
    assert len(calls) == 1


def test_not_a_hub_is_reported_as_such(live_server, alice):
    # A wrong endpoint answers HTML, not the API's JSON: the error must say so.
    wrong = pefthub.Client(live_server.url + "/nothing", alice.token, retries=0, progress=False)
    with (
        wrong,
        pytest.raises(pefthub.NotFoundError, match=r"HTTP 404 from .*is the endpoint a pefthub server"),
    ):
        wrong.whoami()
    admin = pefthub.Client(live_server.url + "/admin", alice.token, retries=0, progress=False)
    with admin, pytest.raises(pefthub.PefthubError, match="answered 200 with something that is not JSON"):
        admin.whoami()


def test_bad_repo_names_and_folders_fail_before_any_request(client, tmp_path, cli_env):
    with pytest.raises(ValueError, match="namespace/name"):
        client.push(tmp_path, "just-a-name")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        client.push(tmp_path / "missing", "alice/x")
    done = run_cli(cli_env, "push", str(tmp_path / "missing"), "alice/x")
    assert done.returncode == 1
    assert (
        done.stderr.strip() == f"error: {tmp_path / 'missing'} is not a folder: push the folder save_pretrained wrote"
    )
    usage = run_cli(cli_env, "push")
    assert usage.returncode == 2


def test_error_body_is_kept(client):
    with pytest.raises(pefthub.NotFoundError) as caught:
        client.get_adapter("alice/nothing")
    assert json.loads(json.dumps(caught.value.body))["error"]["code"] == "not_found"
