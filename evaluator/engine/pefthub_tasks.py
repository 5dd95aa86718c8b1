"""The helpers the lm-eval tasks of the built-in task kinds call (``!function pefthub_tasks.<name>``).

This is the one copy: the hub writes it next to the task YAMLs it generates for a suite
(:mod:`evaluator.suite_kinds`), because lm-eval loads a ``!function`` from a file beside
the YAML. It imports nothing from the project, so the generated folder also runs with
the plain ``lm_eval`` CLI (``--include_path <folder>``) from any directory.

- ``load_local_json``: the task's ``custom_dataset``. lm-eval passes ``dataset_kwargs`` to
  it, and relative ``data_files`` are resolved against this file's folder instead of the
  working directory.
- ``process_results``: scores a generated answer with ``answer_match``: 1.0 when the
  normalised reference answer occurs, as whole tokens, inside the normalised response,
  so "The Widget Pro costs forty-two dollars." matches "$42".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_local_json(data_files: dict[str, str] | None = None, **_metadata: Any):
    """Load the JSONL splits named in ``dataset_kwargs.data_files``, relative to this folder.

    lm-eval also passes its ``metadata`` (model arguments and the like) as keyword
    arguments; they do not change the data and are ignored.
    """
    import datasets

    if not data_files:
        raise ValueError("dataset_kwargs.data_files is required, e.g. {test: test.jsonl}")
    resolved = {split: str((HERE / path).resolve()) for split, path in data_files.items()}
    return datasets.load_dataset("json", data_files=resolved)


_NUMBERS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_ARTICLES = {"a", "an", "the"}
# Spellings of the same unit, mapped to one token (after plural stripping).
_ALIASES = {
    "usd": "dollar",
    "g": "gram",
    "gr": "gram",
    "kg": "kilogram",
    "yr": "year",
    "colour": "color",
    "grey": "gray",
}


def _number_words(tokens: list[str]) -> list[str]:
    """Replace each run of number words ("one hundred and forty two") by its digits."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] not in _NUMBERS and tokens[i] not in _SCALES:
            out.append(tokens[i])
            i += 1
            continue
        total = current = 0
        j = i
        while j < len(tokens):
            word = tokens[j]
            if word in _NUMBERS:
                current += _NUMBERS[word]
            elif word in _SCALES:
                current = (current or 1) * _SCALES[word]
                if _SCALES[word] >= 1000:
                    total, current = total + current, 0
            elif not (
                word == "and" and tokens[j - 1] in _SCALES and tokens[j + 1 : j + 2] and tokens[j + 1] in _NUMBERS
            ):
                break
            j += 1
        out.append(str(total + current))
        i = j
    return out


def normalize(text: str) -> list[str]:
    """Lower-case tokens with punctuation, articles, currency and number spellings unified."""
    text = text.lower()
    text = re.sub(r"\$\s*(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"\s*°\s*([cf])\b", lambda m: " degrees " + {"c": "celsius", "f": "fahrenheit"}[m[1]], text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,299 -> 1299
    text = re.sub(r"(\d+)\.0+\b", r"\1", text)  # 149.00 -> 149
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)  # ac4417 -> ac 4417
    text = re.sub(r"(?<!\d)\.|\.(?!\d)|[^\w.]|_", " ", text)  # keep only decimal points
    tokens = []
    for token in text.split():
        if token in _ARTICLES:
            continue
        if token.isalpha() and len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us")):
            token = token[:-1]
        tokens.append(_ALIASES.get(token, token))
    return _number_words(tokens)


def answer_match(response: str, answer: str) -> bool:
    """Whether the reference ``answer`` occurs as a whole-token span inside ``response``."""
    needle, hay = normalize(answer), normalize(response)
    if not needle:
        return False
    n = len(needle)
    return any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """lm-eval hook for ``generate_until`` tasks: the ``answer_match`` metric."""
    return {"answer_match": float(answer_match(results[0], doc["answer"]))}
