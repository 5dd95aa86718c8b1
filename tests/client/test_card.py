"""The card a push sends: what the training_metadata.json beside the weights records,
with explicit flags and metadata winning over it."""

from __future__ import annotations

import json

import pytest

from pefthub.card import card_from_training, merge_cards
from tests.client.conftest import copy_adapter, run_cli
from tests.client.evaluations import version_of

# What recipes/train.py writes beside the adapter it trained.
RECIPE_RECORD = {
    "training_time_seconds": 412.3,
    "training_hardware": "CPU AMD EPYC 7B13 (2 cores); torch 2.8.0 on cpu",
    "num_training_examples": 640,
    "final_loss": 0.4123,
    "recipe": {"name": "recipes.train:lora", "method": "lora", "suite": "acme-products", "steps": 120},
    "epochs": 3,
    "seed": 0,
    "task_tags": ["acme", "qa"],
    "license": "apache-2.0",
}


def test_a_training_record_splits_into_card_fields_and_extra():
    assert card_from_training(RECIPE_RECORD) == {
        "training_time_seconds": 412.3,
        "training_hardware": "CPU AMD EPYC 7B13 (2 cores); torch 2.8.0 on cpu",
        "num_training_examples": 640,
        "task_tags": ["acme", "qa"],
        "license": "apache-2.0",
        "extra": {"final_loss": 0.4123, "recipe": RECIPE_RECORD["recipe"], "epochs": 3, "seed": 0},
    }
    # A card passes through unchanged; empty values hide nothing.
    card = {"license": "mit", "num_training_examples": 0, "training_hardware": "", "extra": {"loss": 1.0}}
    assert card_from_training(card) == {"license": "mit", "num_training_examples": 0, "extra": {"loss": 1.0}}


def test_later_layers_win_and_extra_merges_key_by_key():
    merged = merge_cards(
        {"license": "apache-2.0", "task_tags": ["acme"], "extra": {"final_loss": 0.4, "seed": 0}},
        None,
        {"license": "mit", "extra": {"final_loss": 1.5}},
    )
    assert merged == {"license": "mit", "task_tags": ["acme"], "extra": {"final_loss": 1.5, "seed": 0}}


live = pytest.mark.django_db(transaction=True)


def _recipe_folder(lora_dir, tmp_path):
    folder = copy_adapter(lora_dir, tmp_path / "out")
    (folder / "training_metadata.json").write_text(json.dumps(RECIPE_RECORD, indent=2))
    return folder


@live
def test_push_of_a_recipe_folder_fills_the_card_from_its_training_metadata(lora_dir, cli_env, tmp_path):
    folder = _recipe_folder(lora_dir, tmp_path)

    done = run_cli(cli_env, "push", str(folder), "alice/recipe", "--base-model", "tiny-llama")

    assert done.returncode == 0, done.stderr
    version = version_of("alice/recipe")
    assert version.training_time_seconds == 412.3
    assert version.training_hardware == RECIPE_RECORD["training_hardware"]
    assert version.num_training_examples == 640
    assert version.license == "apache-2.0"
    assert sorted(t.name for t in version.task_tags.all()) == ["acme", "qa"]
    assert version.metadata["final_loss"] == 0.4123
    assert version.metadata["recipe"]["method"] == "lora"


@live
def test_explicit_flags_win_over_the_training_metadata(lora_dir, cli_env, tmp_path):
    folder = _recipe_folder(lora_dir, tmp_path)

    done = run_cli(
        cli_env,
        "push",
        str(folder),
        "alice/recipe",
        "--base-model",
        "tiny-llama",
        "--license",
        "mit",
        "--task-tag",
        "support",
        "--metadata",
        '{"num_training_examples": 10, "extra": {"final_loss": 1.5}}',
    )

    assert done.returncode == 0, done.stderr
    version = version_of("alice/recipe")
    assert (version.license, version.num_training_examples) == ("mit", 10)
    assert [t.name for t in version.task_tags.all()] == ["support"]
    assert version.metadata["final_loss"] == 1.5
    # What no flag names still comes from the file.
    assert version.training_time_seconds == 412.3
    assert version.metadata["seed"] == 0


@live
def test_an_unreadable_training_metadata_file_does_not_stop_the_push(client, lora_dir, tmp_path, caplog):
    folder = copy_adapter(lora_dir, tmp_path / "out")
    (folder / "training_metadata.json").write_text("{not json")

    adapter_files = ["adapter_config.json", "adapter_model.safetensors"]  # the hub need not see the bad file

    result = client.push(folder, "alice/broken-record", metadata={"license": "mit"}, files=adapter_files)

    assert result.created
    assert version_of("alice/broken-record").license == "mit"
    assert "training_metadata.json is not readable JSON" in caplog.text
