"""Download a base model from a Hugging Face hub at a pinned revision (``--from-hub``).

Any hub that speaks the protocol: huggingface.co, a mirror, or another pefthub (which
serves its base models, :mod:`hub.hf.api`). Pickle weights are never downloaded (loading
them can run code): a repo that has no safetensors weights is refused before any byte of
it is fetched. Django-free, like the rest of :mod:`hub.basemodels`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hub.exceptions import HubError
from hub.validation.files import PICKLE_EXTENSIONS


def _refuse(message: str, *, code: str = "base_model_download_failed") -> HubError:
    return HubError(message, code=code, status_code=400)


def check_weights(repo_id: str, files: list[str]) -> None:
    """Refuse a repo whose weights are pickles only; the pickles of one that has safetensors
    too are left out of the download."""
    if any(f.endswith(".safetensors") for f in files):
        return
    pickles = sorted(f for f in files if Path(f).suffix.lower() in PICKLE_EXTENSIONS)
    if pickles:
        raise _refuse(
            f"`{repo_id}` has only pickle weights ({', '.join(pickles)}), which are refused because loading "
            "them can run arbitrary code; use a revision (or a conversion of the model) with safetensors weights",
            code="pickle_refused",
        )
    raise _refuse(f"`{repo_id}` has no *.safetensors weights; it has: {', '.join(sorted(files)) or 'no files'}")


@dataclass(frozen=True)
class Snapshot:
    """What a hub says of a repo at a revision, before anything is downloaded."""

    repo_id: str
    commit: str  # the commit the revision names now
    files: tuple[str, ...]
    license: str


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str, where: str) -> Iterator[None]:
    """The hub client's errors as the hub's own, saying what to fix."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        yield
    except RevisionNotFoundError as error:
        raise _refuse(f"`{repo_id}` has no revision `{revision}` at {where}: {error}") from error
    except RepositoryNotFoundError as error:
        raise _refuse(
            f"`{repo_id}` was not found at {where} (a private or gated repo needs a token: set HF_TOKEN)"
        ) from error
    except HfHubHTTPError as error:
        raise _refuse(f"downloading `{repo_id}` at `{revision}` from {where} failed: {error}") from error
    except HubError:
        raise
    except Exception as error:  # network and offline-mode errors: say which hub could not be reached
        raise _refuse(
            f"could not download `{repo_id}` from {where}: {type(error).__name__}: {error} "
            "(is the hub reachable, with HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE unset?)"
        ) from error


def _where(endpoint: str | None) -> str:
    return endpoint or "the Hugging Face Hub (set HF_ENDPOINT for another hub)"


def resolve_snapshot(repo_id: str, *, revision: str, endpoint: str | None = None, token: str | None = None) -> Snapshot:
    """One metadata call: the commit ``revision`` names, the files and the card's license;
    a repo with pickle weights only (or none) is refused here, before any download."""
    from huggingface_hub import HfApi

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    with _hub_errors(repo_id, revision, _where(endpoint)):
        info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision)
        files = tuple(s.rfilename for s in info.siblings or [])
        check_weights(repo_id, list(files))
    card = info.card_data.to_dict() if info.card_data is not None else {}
    license = card.get("license")
    return Snapshot(repo_id, str(info.sha), files, license if isinstance(license, str) else "")


def download_snapshot(
    repo_id: str, *, revision: str, target: Path, endpoint: str | None = None, token: str | None = None
) -> tuple[Path, str]:
    """The repo's files at ``revision`` in ``target`` (pickles left out), and its card's license.

    ``endpoint`` defaults to ``HF_ENDPOINT`` as the process has it now (huggingface_hub
    reads it once, at import)."""
    from huggingface_hub import snapshot_download

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    snapshot = resolve_snapshot(repo_id, revision=revision, endpoint=endpoint, token=token)
    with _hub_errors(repo_id, revision, _where(endpoint)):
        snapshot_download(
            repo_id,
            revision=snapshot.commit,  # the commit the revision names now, for every file
            local_dir=target,
            endpoint=endpoint,
            token=token,
            ignore_patterns=[f"*{ext}" for ext in sorted(PICKLE_EXTENSIONS)],
        )
    # snapshot_download's bookkeeping for local_dir; not part of the model.
    shutil.rmtree(target / ".cache", ignore_errors=True)
    return target, snapshot.license
