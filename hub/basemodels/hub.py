"""Download a base model from a Hugging Face hub at a pinned revision (``--from-hub``).

Any hub that speaks the protocol: huggingface.co, a mirror, or another pefthub (which
serves its base models, :mod:`hub.hf.api`). Pickle weights are never downloaded (loading
them can run code): a repo that has no safetensors weights is refused before any byte of
it is fetched. Django-free, like the rest of :mod:`hub.basemodels`.
"""

from __future__ import annotations

import os
import shutil
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


def download_snapshot(
    repo_id: str, *, revision: str, target: Path, endpoint: str | None = None, token: str | None = None
) -> tuple[Path, str]:
    """The repo's files at ``revision`` in ``target`` (pickles left out), and its card's license.

    ``endpoint`` defaults to ``HF_ENDPOINT`` as the process has it now (huggingface_hub
    reads it once, at import)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    where = endpoint or "the Hugging Face Hub (set HF_ENDPOINT for another hub)"
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision)
        check_weights(repo_id, [s.rfilename for s in info.siblings or []])
        snapshot_download(
            repo_id,
            revision=info.sha,  # the commit the revision names now, for every file
            local_dir=target,
            endpoint=endpoint,
            token=token,
            ignore_patterns=[f"*{ext}" for ext in sorted(PICKLE_EXTENSIONS)],
        )
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
    # snapshot_download's bookkeeping for local_dir; not part of the model.
    shutil.rmtree(target / ".cache", ignore_errors=True)
    card = info.card_data.to_dict() if info.card_data is not None else {}
    license = card.get("license")
    return target, license if isinstance(license, str) else ""
