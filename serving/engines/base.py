"""The interface every serving engine implements."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import EngineBusy, EngineError, EngineUnavailable

__all__ = ["Engine", "EngineBusy", "EngineError", "EngineSpec", "EngineUnavailable"]


@dataclass(frozen=True)
class EngineSpec:
    """What an engine serves: one base model, and how many adapters it holds at once."""

    base_name: str
    base_path: Path
    max_loaded: int
    max_rank: int | None = None


class Engine(abc.ABC):
    """One base model plus the adapters loaded on it, answering OpenAI bodies.

    ``kind`` is ``"completions"`` or ``"chat"``; ``body["model"]`` is already the engine's
    own name for the model (the base name, or an adapter name given to :meth:`load`).
    A non-streaming call returns the response dict; a streaming call returns an iterator
    of chunk dicts (the gateway frames them as SSE), the last one carrying ``usage``.
    """

    name: str
    #: adapter methods (``AdapterVersion.method``) this engine can serve
    methods: frozenset[str]
    #: True when every process talks to the same engine (a server): loads done anywhere count
    shared: bool = False

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec

    @property
    def max_loaded(self) -> int:
        return self.spec.max_loaded

    def start(self) -> None:  # noqa: B027 - optional hook
        """Make the engine ready (may take a while); a no-op where nothing runs apart."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` took."""

    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether a request sent now would be answered."""

    @abc.abstractmethod
    def loaded(self) -> set[str]:
        """The adapter names the engine holds right now (the base is not one)."""

    @abc.abstractmethod
    def load(self, name: str, path: Path) -> None:
        """Load the adapter folder ``path`` under ``name`` (idempotent)."""

    @abc.abstractmethod
    def unload(self, name: str) -> None:
        """Drop adapter ``name``; unknown names are ignored."""

    @abc.abstractmethod
    def openai(
        self, kind: str, body: dict[str, Any]
    ) -> dict[str, Any] | Iterator[dict[str, Any]] | AsyncIterator[dict[str, Any]]:
        """Answer an OpenAI completions/chat body (an async iterator only where the engine was
        asked for one: ``VLLMEngine``'s ``stream_async``)."""

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "base_model": self.spec.base_name, "max_loaded": self.max_loaded}
