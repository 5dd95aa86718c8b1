"""Read a base model an operator hands us as a Hugging Face folder, and keep a copy per revision.

Checked before anything is written: a ``config.json`` transformers can build a causal LM
from, safetensors weights (pickles are refused, as for adapters), and tokenizer files.
The revision is :func:`folder_revision` of the folder, so other weights (or another
tokenizer) under the same name make a new revision. Each revision is kept in its own
folder under ``data_dir/base_models/<name>/<revision>/`` (a copy, not hard links: a
``save_pretrained`` into the operator's folder truncates and rewrites the same inodes),
so adapters validated against an older revision still load the weights they were made
for after the operator's folder changes.

Django-free, like the rest of :mod:`hub.basemodels`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from hub.exceptions import HubError
from hub.validation.files import PICKLE_EXTENSIONS

from . import files as hashing
from .bundled import InstalledModel
from .files import MARKER_FILE, folder_revision, fsync_dir, hash_files, write_json_atomic
from .spec import spec_from_folder

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _refuse(message: str, *, code: str = "base_model_folder_invalid") -> HubError:
    return HubError(message, code=code, status_code=422)


def check_name(name: str) -> None:
    if not NAME_RE.match(name) or ".." in name or name.endswith("."):
        raise _refuse(
            f"base model name `{name}` is not valid: use 1-100 lowercase letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit (e.g. `llama-3.1-8b-instruct`)"
        )


def check_folder(folder: Path) -> None:
    """Refuse a folder that is not a safetensors causal LM with its tokenizer, saying what to fix."""
    if not folder.is_dir():
        raise _refuse(f"{folder} is not a folder; pass the Hugging Face folder holding config.json")
    if not (folder / "config.json").is_file():
        raise _refuse(f"{folder} has no config.json; pass the folder `save_pretrained` wrote (or a hub snapshot)")
    pickles = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix.lower() in PICKLE_EXTENSIONS
    )
    if pickles:
        raise _refuse(
            f"{', '.join(pickles)}: pickle files ({', '.join(sorted(PICKLE_EXTENSIONS))}) are refused because "
            "loading them can run arbitrary code. Save the weights as safetensors with "
            "`model.save_pretrained(dir, safe_serialization=True)` and leave the pickle files out of the folder",
            code="pickle_refused",
        )
    if not any(folder.glob("*.safetensors")):
        raise _refuse(
            f"{folder} has no *.safetensors weights; save them with "
            "`model.save_pretrained(dir, safe_serialization=True)`"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise _refuse(
            f"{folder} has no tokenizer ({' or '.join(TOKENIZER_FILES)}); save it with `tokenizer.save_pretrained(dir)`"
        )


def chat_template(folder: Path) -> str:
    """The folder's chat template: ``chat_template.jinja``, ``chat_template.json`` or the
    ``chat_template`` of ``tokenizer_config.json`` (the places transformers writes it); ``""`` if none."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            template = json.loads(path.read_text()).get("chat_template")
            if isinstance(template, str):
                return template
            if isinstance(template, list):  # named templates: keep the default one
                named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
                return str(named.get("default") or next(iter(named.values()), "") or "")
    return ""


def read_folder(
    folder: Path, *, name: str, aliases: tuple[str, ...] = (), license: str = "", display_name: str = ""
) -> tuple[InstalledModel, str]:
    """Describe the folder as an :class:`InstalledModel` (its path still the operator's) and its chat template."""
    check_name(name)
    folder = Path(folder).resolve()
    check_folder(folder)
    try:
        spec = spec_from_folder(folder, name=name, aliases=aliases)
    except (ValueError, KeyError, OSError) as error:
        raise _refuse(f"{folder}/config.json does not describe a causal LM transformers can build: {error}") from error
    config = json.loads((folder / "config.json").read_text())
    files = hash_files(folder)
    installed = InstalledModel(
        name=name,
        path=folder,
        revision=hashing.revision(files),
        files=files,
        architecture=spec.architecture,
        display_name=display_name or name,
        aliases=tuple(aliases),
        license=license,
        spec=spec,
        config=config,
    )
    return installed, chat_template(folder)


def keep_revision(folder: Path, *, data_dir: Path, name: str, revision: str) -> Path:
    """A complete copy of ``folder`` at ``data_dir/base_models/<name>/<revision>/``, made once.

    The copy is made next to the target, checked against ``revision`` and renamed into
    place, and the marker is written last, so the target is either absent or complete.
    """
    target = Path(data_dir) / "base_models" / name / revision
    if (target / MARKER_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{revision}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(MARKER_FILE))
    copied = folder_revision(staging)
    if copied != revision:
        shutil.rmtree(staging, ignore_errors=True)
        raise _refuse(
            f"{folder} changed while it was being added (revision {copied[:12]}, not {revision[:12]}); try again"
        )
    write_json_atomic(staging / MARKER_FILE, {"name": name, "revision": revision, "source": str(folder)})
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    fsync_dir(target.parent)
    return target
