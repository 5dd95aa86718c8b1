"""A ``transformers`` callback that pushes the adapter being trained to the hub.

    trainer.add_callback(PefthubCallback("acme/support-bot", push_on_save=True))

At the end of training it saves the PEFT adapter (``model.save_pretrained``) with
what it recorded beside it in ``training_metadata.json`` (training time, hardware,
number of training examples, the final loss and step), as the training recipe does,
and pushes that folder: the card is built from the file by the same code as for
``pefthub push`` (:mod:`pefthub.card`). With ``push_on_save`` every checkpoint the
Trainer saves is pushed too (its adapter files only, not the optimizer state).

Importing this module imports transformers; ``import pefthub`` alone does not.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .card import TRAINING_METADATA, card_from_training, merge_cards
from .client import Client
from .repo import parse_repo
from .results import PushResult

log = logging.getLogger("pefthub")

# What peft's save_pretrained writes into a Trainer checkpoint; the rest there is
# optimizer, scheduler and RNG state the hub neither needs nor accepts.
CHECKPOINT_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md")


class PefthubCallback(TrainerCallback):
    """Push the trained adapter to ``repo`` (namespace/name) at the end of training.

    ``token`` and ``endpoint`` default as for :class:`pefthub.Client`. ``base_model``
    names the registered base model when the adapter's ``base_model_name_or_path`` is
    a local path. ``metadata`` is merged into the card (yours wins over what the
    callback records; ``extra`` is merged key by key). Only the main process pushes,
    and prints each version and its address unless ``quiet``. ``pushed`` lists the
    results, checkpoints first.
    """

    def __init__(
        self,
        repo: str,
        token: str | None = None,
        endpoint: str | None = None,
        push_on_save: bool = False,
        base_model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        aliases: Sequence[str] = (),
        private: bool = False,
        progress: bool | None = None,
        quiet: bool = False,
        client: Client | None = None,
    ) -> None:
        rid = parse_repo(repo)
        if rid.ref:
            raise ValueError(f"push to {rid.full_name}, not to a version ({rid})")
        self.repo = rid.full_name
        self.push_on_save = push_on_save
        self.base_model = base_model
        self.metadata = dict(metadata or {})
        self.aliases = tuple(aliases)
        self.private = private
        self._client = client
        self._token = token
        self._endpoint = endpoint
        self._progress = progress
        self.quiet = quiet
        self.pushed: list[PushResult] = []
        self._started: float | None = None
        self._num_examples: int | None = None
        self._hardware = ""
        self._last_loss: float | None = None
        self._train_loss: float | None = None

    # --- Trainer events --------------------------------------------------------------------
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs.get("model")
        if model is not None and not hasattr(model, "peft_config"):
            # Fail now, not after hours of training: the hub takes adapters, not whole models.
            raise ValueError(
                f"PefthubCallback pushes PEFT adapters, but the Trainer's model is a "
                f"{type(model).__name__}; wrap it with peft.get_peft_model(model, config)"
            )
        self._started = time.monotonic()
        self._num_examples = num_examples(kwargs.get("train_dataloader"))
        self._hardware = describe_hardware(args)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs:
            return
        if isinstance(logs.get("loss"), (int, float)):
            self._last_loss = float(logs["loss"])
        if isinstance(logs.get("train_loss"), (int, float)):
            self._train_loss = float(logs["train_loss"])

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not self.push_on_save or not state.is_world_process_zero:
            return
        if control.should_training_stop or state.global_step >= state.max_steps:
            # The last save is pushed by on_train_end with the final metadata; pushing it
            # here too would make that push a no-op returning this checkpoint's card.
            return
        folder = Path(args.output_dir or ".") / f"checkpoint-{state.global_step}"
        files = [name for name in CHECKPOINT_FILES if (folder / name).is_file()]
        extra = {"global_step": state.global_step, "epoch": state.epoch, "checkpoint": True}
        if self._last_loss is not None:
            extra["loss"] = self._last_loss
        try:
            self._push(folder, files, self.card(extra))
        except Exception as exc:
            # A checkpoint that did not make it is no reason to stop a training run; the
            # folder stays on disk and the final push still happens.
            log.error("pushing %s failed: %s; training goes on", folder, exc)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        model = kwargs.get("model")
        if model is None:
            raise ValueError("PefthubCallback got no model at the end of training")
        extra: dict[str, Any] = {"global_step": state.global_step, "epoch": state.epoch}
        final_loss = self._last_loss if self._last_loss is not None else self._train_loss
        if final_loss is not None:
            extra["final_loss"] = final_loss
        if self._train_loss is not None:
            extra["train_loss"] = self._train_loss
        with tempfile.TemporaryDirectory(prefix="pefthub-") as tmp:
            model.save_pretrained(tmp)
            # The push reads this file like any other folder's (and a folder kept after a
            # failed push still carries it, for `pefthub push`).
            (Path(tmp) / TRAINING_METADATA).write_text(json.dumps(self.record(extra), indent=2) + "\n")
            try:
                self._push(Path(tmp), None, self.metadata)
            except Exception:
                kept = Path(args.output_dir or ".") / "pefthub-unpushed"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(tmp, kept)
                log.error(
                    "the trained adapter was not pushed; it is saved in %s: push it with `pefthub push %s %s`",
                    kept,
                    kept,
                    self.repo,
                )
                raise

    # --- pushing ---------------------------------------------------------------------------
    def record(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """What the run recorded, flat, as the recipe's ``training_metadata.json`` has it."""
        recorded: dict[str, Any] = {"training_hardware": self._hardware}
        if self._started is not None:
            recorded["training_time_seconds"] = round(time.monotonic() - self._started, 3)
        if self._num_examples is not None:
            recorded["num_training_examples"] = self._num_examples
        return {**recorded, **extra}

    def card(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The card metadata for a push: what was recorded, then the user's ``metadata``."""
        return merge_cards(card_from_training(self.record(extra)), self.metadata)

    def _push(self, folder: Path, files: Sequence[str] | None, metadata: Mapping[str, Any]) -> PushResult:
        if self._client is None:
            self._client = Client(self._endpoint, self._token, progress=self._progress)
        result = self._client.push(
            folder,
            self.repo,
            base_model=self.base_model,
            metadata=metadata,
            aliases=self.aliases,
            files=files,
            private=self.private,
        )
        self.pushed.append(result)
        if not self.quiet:
            print(result.summary(), flush=True)
        return result


def num_examples(dataloader: Any) -> int | None:
    """The size of the dataset behind the Trainer's train dataloader, when it has one."""
    dataset = getattr(dataloader, "dataset", None)
    # accelerate's IterableDatasetShard wraps the real dataset.
    inner = getattr(dataset, "dataset", None)
    for candidate in (dataset, inner):
        try:
            return len(candidate)  # type: ignore[arg-type]
        except TypeError:
            continue
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_hardware(args: TrainingArguments | None = None) -> str:
    """One line for the card: accelerators, CPU, torch and the device trained on."""
    import torch

    parts = []
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        for name in dict.fromkeys(names):
            parts.append(f"{names.count(name)}x {name}")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        parts.append("Apple MPS")
    parts.append(f"CPU {_cpu_model()} ({os.cpu_count()} cores)")
    trained_on = f"torch {torch.__version__}"
    if args is not None:
        trained_on += f" on {args.device}"
        if args.world_size > 1:
            trained_on += f" x{args.world_size} processes"
    parts.append(trained_on)
    return "; ".join(parts)[:200]
