"""Model cards: what an upload says about itself beyond its tensors.

Two sources, in this order of precedence: the upload's ``metadata`` field (validated by
``hub.serializers.CardIn``) and the README's YAML front matter, as Hugging Face model cards
carry it (``license``, ``datasets``, ``tags``). README front matter is parsed here and only
here: the pages (``web.markdown``) use :func:`split_front_matter` to drop it before
rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from django.core.validators import slug_re

from .models import AdapterVersion

if TYPE_CHECKING:
    from .validation import ValidatedAdapter

#: The limits ``CardIn.task_tags`` puts on API tags; README tags get the same.
MAX_TAG_LENGTH = 64
MAX_TAGS = 32
_SMALL_JSON_BYTES = 1024 * 1024
# A first line of exactly ``---``, then everything up to the next line of exactly ``---``.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?P<yaml>.*?)^---[ \t]*\r?$\n?", re.DOTALL | re.MULTILINE)


@dataclass
class CardInput:
    """What the uploader tells us beyond the files (all optional)."""

    base_model: str | None = None
    task_tags: list[str] = field(default_factory=list)
    license: str = ""
    datasets: list[str] = field(default_factory=list)
    training_time_seconds: float | None = None
    training_hardware: str = ""
    num_training_examples: int | None = None
    training_run_url: str = ""
    parent: str | None = None  # "namespace/name@ref"
    quantization_bits: int | None = None
    quantization_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    commit_title: str = ""  # the HF commit that made the version (hub.hf.commits)
    commit_description: str = ""

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], *, base_model: str | None = None) -> CardInput:
        """The card of an upload's validated ``metadata`` (``CardIn``'s output)."""
        quantization = metadata.get("quantization") or {}
        return cls(
            base_model=base_model or None,
            task_tags=list(metadata.get("task_tags") or []),
            license=metadata.get("license") or "",
            datasets=list(metadata.get("datasets") or []),
            training_time_seconds=metadata.get("training_time_seconds"),
            training_hardware=metadata.get("training_hardware") or "",
            num_training_examples=metadata.get("num_training_examples"),
            training_run_url=metadata.get("training_run_url") or "",
            parent=metadata.get("parent"),
            quantization_bits=quantization.get("bits"),
            quantization_type=quantization.get("type") or "",
            extra=dict(metadata.get("extra") or {}),
        )


@dataclass(frozen=True)
class CardFields:
    """The card fields a version stores, after metadata and README front matter are merged."""

    license: str
    datasets: list[str]
    task_tags: list[str]


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(front matter, body)`` of a README: the YAML block HF model cards start with, as a
    dict (empty when absent, not YAML or not a mapping), and the text after it."""
    match = _FRONT_MATTER.match(text or "")
    if match is None:
        return {}, text or ""
    import yaml

    try:
        data = yaml.safe_load(match.group("yaml"))
    except yaml.YAMLError:
        data = None
    return (data if isinstance(data, dict) else {}), text[match.end() :]


def as_str_list(value: Any) -> list[str]:
    """A YAML value that should be a list of strings (one string counts as a list of one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float))]
    return []


def normalize_tags(tags: list[str]) -> list[str]:
    """Sorted, lowercase, de-duplicated task tags, each a slug of at most 64 characters.

    API tags were already refused by ``CardIn`` if they were not; README tags that are not
    (HF's ``base_model:adapter:...``, free text) are left out rather than refusing a README
    peft wrote itself.
    """
    kept: set[str] = set()
    for raw in tags:
        tag = raw.strip().lower()
        if tag and len(tag) <= MAX_TAG_LENGTH and slug_re.fullmatch(tag):
            kept.add(tag)
        if len(kept) == MAX_TAGS:
            break
    return sorted(kept)


def card_fields(card: CardInput, readme: str) -> CardFields:
    """Metadata wins field by field; the README's front matter fills what it left empty."""
    front, _ = split_front_matter(readme)
    return CardFields(
        license=(card.license or str(front.get("license") or "")).strip().lower(),
        datasets=card.datasets or as_str_list(front.get("datasets")),
        task_tags=normalize_tags(card.task_tags or as_str_list(front.get("tags"))),
    )


def method_for(validated: ValidatedAdapter, card: CardInput) -> str:
    """The catalog's method: peft's type, refined by quantization (QLoRA) and DoRA."""
    method = {
        "LORA": AdapterVersion.Method.LORA,
        "PROMPT_TUNING": AdapterVersion.Method.PROMPT_TUNING,
        "PREFIX_TUNING": AdapterVersion.Method.PREFIX_TUNING,
        "P_TUNING": AdapterVersion.Method.P_TUNING,
        "IA3": AdapterVersion.Method.IA3,
    }[validated.peft_type]
    if method == AdapterVersion.Method.LORA:
        if card.quantization_bits:
            return AdapterVersion.Method.QLORA  # a LoRA trained on a quantized base
        if validated.config.get("use_dora"):
            return AdapterVersion.Method.DORA
    return method


def read_small_json(files: Mapping[str, BinaryIO], name: str) -> dict[str, Any]:
    """A JSON object from the upload's file ``name`` (1 MiB at most), else ``{}``."""
    handle = files.get(name)
    if handle is None:
        return {}
    handle.seek(0)
    raw = handle.read(_SMALL_JSON_BYTES + 1)
    handle.seek(0)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_readme(files: Mapping[str, BinaryIO]) -> str:
    """The upload's README.md as text ("" when there is none)."""
    handle = files.get("README.md")
    if handle is None:
        return ""
    handle.seek(0)
    text = handle.read().decode("utf-8", errors="replace")
    handle.seek(0)
    return text
