"""The bytes of a push and a pull: the parts of an upload, and one checked download.

:class:`pefthub.Client` drives them (the tries, the progress bars); these build what goes
over the wire and check what comes back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from tqdm.auto import tqdm

from .card import training_card
from .errors import ConnectionFailed, PefthubError
from .http import HttpClient, reason
from .multipart import Part


def push_parts(
    folder: str | os.PathLike[str],
    paths: Sequence[Path],
    *,
    base_model: str | None,
    metadata: Mapping[str, Any] | None,
    aliases: Sequence[str],
) -> list[Part]:
    """The form of an upload: base model, card and aliases first, then the files."""
    fields: list[Part] = []
    if base_model:
        fields.append(Part("base_model", value=base_model))
    card = training_card(folder, metadata)
    if card:
        fields.append(Part("metadata", value=json.dumps(card)))
    fields.extend(Part("aliases", value=alias) for alias in aliases)
    return fields + [Part("files", path=p, filename=p.name) for p in paths]


def download_file(http: HttpClient, url: str, *, name: str, sha256: str, target: Path, bar: tqdm) -> None:
    """Fetch ``url`` into ``target / name`` through a hidden ``.part`` file, retrying a
    dropped connection, and keep it only if its sha256 is the one the hub lists."""
    partial = target / f".{name}.part"
    tries = 1 + http.retries
    for attempt in range(1, tries + 1):
        start = bar.n
        digest = hashlib.sha256()
        response = http._request("GET", url, stream=True)
        try:
            with open(partial, "wb") as handle:
                for chunk in response.iter_content(chunk_size=256 * 1024):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            bar.update(start - bar.n)
            if attempt < tries:
                http._wait(attempt, tries, f"download of {name}: {reason(exc)}")
                continue
            partial.unlink(missing_ok=True)
            raise ConnectionFailed(f"download of {name} kept failing ({reason(exc)})") from exc
        finally:
            response.close()
        if digest.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise PefthubError(f"{name}: the download's sha256 is {digest.hexdigest()} but the hub lists {sha256}")
        os.replace(partial, target / name)
        return
