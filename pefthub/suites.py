"""Packing an evaluation suite folder for ``pefthub suite push`` (``POST /api/v1/suites/``).

A suite registered over the API holds data only: ``suite.json`` and its JSONL files (plus
``.md``/``.txt`` notes). Other files of the folder (a data generator script, caches) are
left out and named, so the caller sees what was not sent.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

DATA_SUFFIXES = (".json", ".jsonl", ".md", ".txt")


def pack_suite(folder: str | Path, target: Path) -> tuple[list[str], list[str]]:
    """Write a tar.gz of the folder's suite files to ``target``: (names packed, names left out)."""
    folder = Path(folder)
    if not (folder / "suite.json").is_file():
        raise ValueError(f"{folder} has no suite.json: give the suite's folder")
    packed, skipped = [], []
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.name == "__pycache__":
                continue
            if path.is_file() and not path.is_symlink() and path.name.endswith(DATA_SUFFIXES):
                info = tar.gettarinfo(str(path), arcname=path.name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
                packed.append(path.name)
            else:
                skipped.append(path.name + ("/" if path.is_dir() else ""))
    return packed, skipped
