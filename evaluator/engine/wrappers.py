"""lm-eval ``LM`` wrappers: retrieval in front of any backend, and progress reporting.

Both delegate everything to the wrapped model and change only what they are for, so
any backend in the registry gets a RAG arm and live progress for free.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lm_eval.api.model import LM

from .passages import question_with_passages
from .retrievers import Retriever


class DelegatingLM(LM):
    """An LM that forwards to ``inner``; subclasses override the request methods."""

    def __init__(self, inner: LM) -> None:
        super().__init__()
        self.inner = inner

    def loglikelihood(self, requests):
        return self.inner.loglikelihood(requests)

    def loglikelihood_rolling(self, requests):
        return self.inner.loglikelihood_rolling(requests)

    def generate_until(self, requests):
        return self.inner.generate_until(requests)

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True):
        return self.inner.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self) -> str:
        return self.inner.tokenizer_name

    def chat_template(self, chat_template: bool | str = False):
        return self.inner.chat_template(chat_template)

    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def world_size(self) -> int:
        return self.inner.world_size

    @property
    def device(self):
        if hasattr(self.inner, "device"):
            return self.inner.device
        from .device import placement

        return placement().device

    def __getattr__(self, name: str):
        # Backend-specific attributes lm-eval may read (tokenizer, max_length, ...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def question_of(doc: dict) -> str:
    for key in ("question", "query", "input", "text"):
        if isinstance(doc.get(key), str):
            return doc[key]
    raise ValueError("the task's documents have no `question` field to retrieve with")


class RagLM(DelegatingLM):
    """Puts the top-k passages for each document's question in front of the question.

    The passages go where the question stands in the already-rendered prompt (chat
    template included), so the system prompt and turn markers stay as the task made them.
    """

    def __init__(self, inner: LM, retriever: Retriever, k: int) -> None:
        super().__init__(inner)
        self.retriever = retriever
        self.k = k
        self.retrieved: dict[tuple[str, int], list[str]] = {}

    def _augment(self, request):
        question = question_of(request.doc)
        passages = self.retriever.search(question, self.k)
        self.retrieved[(request.task_name, request.doc_id)] = [p.id for p in passages]
        block = question_with_passages(question, passages)
        context, *rest = request.args
        at = context.rfind(question)
        context = context[:at] + block + context[at + len(question) :] if at >= 0 else f"{block}\n\n{context}"
        # In place, so lm-eval's per-sample log shows the prompt the model really saw.
        request.arguments = (context, *rest)
        return request

    def loglikelihood(self, requests):
        return self.inner.loglikelihood([self._augment(r) for r in requests])

    def generate_until(self, requests):
        return self.inner.generate_until([self._augment(r) for r in requests])


class SplitLM(DelegatingLM):
    """Loglikelihood on ``inner``, generation on a second model made on first use."""

    def __init__(self, inner: LM, make_generator: Callable[[], LM]) -> None:
        super().__init__(inner)
        self._make_generator = make_generator
        self._generator: LM | None = None

    def generate_until(self, requests):
        if self._generator is None:
            self._generator = self._make_generator()
        return self._generator.generate_until(requests)


class Cancelled(Exception):
    """The job was cancelled while its requests ran."""


class ProgressLM(DelegatingLM):
    """Feeds requests to the backend in chunks and reports after each one.

    ``report(done, total, chunk)`` may raise :class:`Cancelled` to stop the run between
    chunks. ``seconds`` adds up the time spent in the model (and retrieval) alone.
    """

    def __init__(self, inner: LM, report: Callable[[int, int, list], None], total: int, chunk: int = 64) -> None:
        super().__init__(inner)
        self.report = report
        self.total = total
        self.done = 0
        self.chunk = chunk
        self.seconds = 0.0

    def _chunked(self, method: str, requests):
        results = []
        for start in range(0, len(requests), self.chunk):
            chunk = requests[start : start + self.chunk]
            started = time.perf_counter()
            results.extend(getattr(self.inner, method)(chunk))
            self.seconds += time.perf_counter() - started
            self.done += len(chunk)
            self.report(self.done, self.total, chunk)
        return results

    def loglikelihood(self, requests):
        return self._chunked("loglikelihood", requests)

    def loglikelihood_rolling(self, requests):
        return self._chunked("loglikelihood_rolling", requests)

    def generate_until(self, requests):
        return self._chunked("generate_until", requests)
