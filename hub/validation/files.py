"""Which files an adapter upload may contain, and how big they may be.

Checked first and cheaply, before any file is parsed: names, kinds and sizes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from hub.exceptions import UploadRejected, UploadTooLarge

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"

# Unpickling runs arbitrary code, so weights in these formats are never accepted.
PICKLE_EXTENSIONS = frozenset({".bin", ".pt", ".pth", ".pkl", ".ckpt", ".pickle"})
# Small text side files that save_pretrained, trainers and tokenizers write next to the
# adapter (README.md, tokenizer.json, chat_template.jinja, tokenizer.model).
SIDE_FILE_EXTENSIONS = frozenset({".json", ".md", ".txt", ".jinja", ".model"})

_MAX_NAME_LENGTH = 255
# Files no evaluation reads: the card and notes about the training. A commit changing only
# these makes a version whose answers are those of its parent (see :func:`answers_hash`).
ANSWER_NEUTRAL_NAMES = frozenset({"training_metadata.json", ".gitattributes"})
ANSWER_NEUTRAL_EXTENSIONS = frozenset({".md"})


def answers_hash(hashes: Mapping[str, str]) -> str:
    """sha256 over the files (``path -> sha256``) that can change what the adapter answers.

    Everything but :data:`ANSWER_NEUTRAL_NAMES` and Markdown, rather than only the config and
    weights: a file left in by mistake (a tokenizer, a chat template) costs a re-run, where
    leaving out one that matters would reuse wrong scores.
    """
    kept = sorted(
        (path, sha)
        for path, sha in hashes.items()
        if os.path.basename(path) not in ANSWER_NEUTRAL_NAMES
        and os.path.splitext(path)[1].lower() not in ANSWER_NEUTRAL_EXTENSIONS
    )
    return hashlib.sha256("".join(f"{path}\0{sha}\n" for path, sha in kept).encode()).hexdigest()


@dataclass(frozen=True)
class UploadLimits:
    """Size caps for one adapter upload, in bytes."""

    max_file_bytes: int = 512 * 1024**2
    max_upload_bytes: int = 1024**3
    max_header_bytes: int = 16 * 1024**2  # safetensors JSON header cap
    max_config_bytes: int = 1024**2


DEFAULT_LIMITS = UploadLimits()


def check_upload_files(files: Mapping[str, BinaryIO], sizes: Mapping[str, int], limits: UploadLimits) -> dict[str, int]:
    """Check names, kinds and sizes of the uploaded files; return each file's real size.

    Sizes are measured on the file objects, and a declared size that disagrees with the
    measured one is refused: it means the upload was cut short or tampered with.
    """
    if not files:
        raise UploadRejected(
            f"the upload is empty: upload the folder peft's save_pretrained wrote ({CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    for name in sorted(files):
        check_filename(name)
    for name in sorted(files):
        _check_kind(name)
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if required not in files:
            raise UploadRejected(
                f"missing {required}: upload the folder peft's save_pretrained wrote "
                f"(it contains {CONFIG_NAME} and {WEIGHTS_NAME})",
                file=required,
            )

    measured = {name: _measure(fileobj) for name, fileobj in files.items()}
    for name in sorted(files):
        declared = sizes.get(name)
        if declared is not None and declared != measured[name]:
            raise UploadRejected(
                f"{name}: the upload declared {declared} bytes but {measured[name]} arrived; upload it again",
                file=name,
            )
        if measured[name] > limits.max_file_bytes:
            raise UploadTooLarge(
                f"{name} is {human_bytes(measured[name])}; the limit per file is {human_bytes(limits.max_file_bytes)}",
                file=name,
            )
    total = sum(measured.values())
    if total > limits.max_upload_bytes:
        raise UploadTooLarge(
            f"the upload is {human_bytes(total)} in all; "
            f"the limit is {human_bytes(limits.max_upload_bytes)}: "
            "leave out files the adapter does not need"
        )
    if measured[CONFIG_NAME] > limits.max_config_bytes:
        raise UploadTooLarge(
            f"{CONFIG_NAME} is {human_bytes(measured[CONFIG_NAME])}; the limit is "
            f"{human_bytes(limits.max_config_bytes)} (peft writes a few KiB)",
            file=CONFIG_NAME,
        )
    return measured


def check_filename(name: str) -> None:
    """Refuse anything but a plain, flat file name (no folders, no hidden files)."""
    shown = repr(name)
    if not isinstance(name, str) or not name:
        raise UploadRejected(f"file name {shown} is empty or not text", field="files")
    if "/" in name or "\\" in name:
        raise UploadRejected(
            f"`{name}`: file names must be flat (no folders); upload the files inside the folder "
            "that save_pretrained wrote",
            file=name,
            field="files",
        )
    if "\x00" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UploadRejected(f"file name {shown} contains control characters; rename it", file=name, field="files")
    if name.startswith(".") or ".." in name:
        raise UploadRejected(
            f"`{name}`: file names may not start with a dot or contain `..`; leave hidden files out of the upload",
            file=name,
            field="files",
        )
    if len(name) > _MAX_NAME_LENGTH:
        raise UploadRejected(
            f"file name `{name[:40]}...` is {len(name)} characters; the limit is {_MAX_NAME_LENGTH}",
            file=name,
            field="files",
        )


def check_kind(name: str) -> None:
    """Refuse pickles, stray safetensors and unknown file types by their name."""
    _check_kind(name)


def _check_kind(name: str) -> None:
    extension = os.path.splitext(name)[1].lower()
    if extension in PICKLE_EXTENSIONS:
        raise UploadRejected(
            f"{name}: pickle files ({', '.join(sorted(PICKLE_EXTENSIONS))}) are refused because "
            "loading them can run arbitrary code. If it holds the adapter weights, "
            "save them as safetensors with "
            "`model.save_pretrained(dir, safe_serialization=True)` or "
            f"`safetensors.torch.save_file(state_dict, '{WEIGHTS_NAME}')`; if it is not needed "
            "(training_args.bin, optimizer.pt), leave it out",
            file=name,
            field="files",
        )
    if extension == ".safetensors":
        if name != WEIGHTS_NAME:
            raise UploadRejected(
                f"{name}: the only safetensors file accepted is {WEIGHTS_NAME} (the adapter weights "
                "save_pretrained writes); full model weights and shards are not uploaded here",
                file=name,
                field="files",
            )
        return
    if extension not in SIDE_FILE_EXTENSIONS:
        raise UploadRejected(
            f"{name}: files of type `{extension or '(no extension)'}` are not accepted; an upload holds "
            f"{CONFIG_NAME}, {WEIGHTS_NAME} and optional side files "
            f"({', '.join(sorted(SIDE_FILE_EXTENSIONS))})",
            file=name,
            field="files",
        )


def _measure(fileobj: BinaryIO) -> int:
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB (1536 bytes)"``: readable, but still exact."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "bytes":
                return f"{n} bytes"
            return f"{value:.1f} {unit} ({n} bytes)"
        value /= 1024
    raise AssertionError("unreachable")
