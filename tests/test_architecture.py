"""Who may import whom, as docs/architecture.md draws it. Lazy imports inside functions count."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hub", "evaluator", "serving", "web", "recipes", "pefthub", "config")

# package -> (packages it must never import, modules of those it may import all the same)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "hub": ({"evaluator", "serving", "web", "recipes"}, set()),
    "serving": ({"evaluator", "web", "recipes"}, set()),
    # The evaluator's vLLM backend needs the same identity-LoRA workaround the engines use; its
    # shared-engine backend talks to the serving engine through the engines' vLLM client.
    "evaluator": (
        {"serving", "web", "recipes"},
        {"serving.engines.vllm_identity", "serving.engines.vllm_engine", "serving.engines.base"},
    ),
    # A training job: it talks to the hub through the client, shares the RAG arm's prompt and
    # installs the bundled base like the hub does.
    "recipes": ({"serving", "web", "evaluator", "hub"}, {"evaluator.engine.passages", "hub.basemodels"}),
    # The client ships alone (pip install pefthub): nothing of the server.
    "pefthub": ({"hub", "evaluator", "serving", "web", "recipes", "config"}, set()),
}


def _imported(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    here = parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                module = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                module = node.module or ""
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _violations(package: str) -> list[str]:
    forbidden, allowed = RULES[package]
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for name in _imported(path):
            top = name.split(".")[0]
            if top in forbidden and not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_imports_follow_the_layers(package):
    assert _violations(package) == []


def test_the_rules_can_fail(tmp_path, monkeypatch):
    """A hub module that imports the evaluator is caught (the check is not vacuous)."""
    fake = tmp_path / "hub"
    fake.mkdir()
    (fake / "leak.py").write_text("def f():\n    from evaluator.models import Suite\n    return Suite\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("hub") == ["hub/leak.py imports evaluator.models.Suite"]
