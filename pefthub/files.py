"""Which files of an adapter folder go to the hub, and their hashes."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
# What a Trainer writes next to the adapter in a checkpoint or output folder; the hub
# refuses pickles and has no use for optimizer state, so a folder push leaves them out.
TRAINER_STATE_FILES = frozenset(
    {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json"}
)
_TRAINER_STATE_RE = re.compile(r"^rng_state(_\d+)?\.pth$")


def select_files(folder: str | os.PathLike[str], files: Iterable[str] | None = None) -> list[Path]:
    """The files of ``folder`` to upload, the adapter weights last.

    ``files`` names them; by default every visible top-level file except a Trainer's
    own state (optimizer, scheduler, RNG state, training arguments). The weights go
    last on purpose: a body cut short then always lacks them, so the hub refuses it
    as a whole instead of storing the parts that did arrive.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: push the folder save_pretrained wrote")
    if files is not None:
        chosen = []
        for name in files:
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist")
            chosen.append(path)
    else:
        chosen = [
            p
            for p in root.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.name not in TRAINER_STATE_FILES
            and not _TRAINER_STATE_RE.match(p.name)
        ]
    return sorted(chosen, key=lambda p: (p.name == WEIGHTS_NAME, p.name))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
