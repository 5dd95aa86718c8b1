"""The card metadata a push sends, from what training recorded.

A training run records its facts in one flat JSON object: the recipe writes it as
``training_metadata.json`` beside the weights, and :class:`pefthub.PefthubCallback`
builds the same object from the Trainer. :func:`card_from_training` sorts it into the
card's own fields (training time, hardware, example count, license, ...) and ``extra``
(loss, steps, recipe settings, ...); :func:`merge_cards` lays explicit metadata over it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("pefthub")

TRAINING_METADATA = "training_metadata.json"
# The card fields the hub keeps in their own columns (hub.serializers.CardIn); every
# other key of a training record goes to the card's ``extra``.
CARD_FIELDS = (
    "task_tags",
    "license",
    "datasets",
    "training_time_seconds",
    "training_hardware",
    "num_training_examples",
    "training_run_url",
    "parent",
    "quantization",
)


def card_from_training(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"training_time_seconds": 12.5, "final_loss": 0.8, ...}`` ->
    ``{"training_time_seconds": 12.5, "extra": {"final_loss": 0.8}, ...}``.

    A key already named ``extra`` is merged into ``extra``, so a card passes through
    unchanged. Empty values (None, "", []) are left out: they would only hide a value
    a later layer does not set.
    """
    card = {k: record[k] for k in CARD_FIELDS if record.get(k) not in (None, "", [], {})}
    extra = {k: v for k, v in record.items() if k not in CARD_FIELDS and k != "extra"}
    nested = record.get("extra")
    if isinstance(nested, Mapping):
        extra.update(nested)
    if extra:
        card["extra"] = extra
    return card


def merge_cards(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The layers' fields, a later layer winning; ``extra`` is merged key by key."""
    merged: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if key == "extra" and isinstance(value, Mapping):
                extra.update(value)
            else:
                merged[key] = value
    if extra:
        merged["extra"] = extra
    return merged


def read_training_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The training record beside the weights in ``folder`` (``{}`` when there is none).

    A file that is not a JSON object is skipped with a warning: the push still goes
    through, with the card the caller gave.
    """
    path = Path(folder) / TRAINING_METADATA
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        log.warning("%s is not readable JSON (%s); the card leaves out what it records", path, exc)
        return {}
    if not isinstance(record, dict):
        log.warning("%s is not a JSON object; the card leaves out what it records", path)
        return {}
    return record


def training_card(folder: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The card for a push of ``folder``: its training record, then ``metadata`` over it."""
    return merge_cards(card_from_training(read_training_metadata(folder)), metadata)
