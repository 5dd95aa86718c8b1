"""The playground: the page, and the retrieval step of its RAG column.

Answers come from the serving gateway (same origin, ``/v1/chat/completions``, OpenAI API,
streamed as server-sent events); the page's script calls it with the session cookie and
the CSRF token. This module only retrieves passages for the RAG baseline, with the
suite's own retriever over its own corpus, so the column shows what the evaluator's RAG
arm would put in front of the base model.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, Resolver404, resolve
from django.views.decorators.http import require_GET

from .. import selectors
from ..forms import RetrieveForm

# Same wording as the evaluator's RAG arm (evaluator.engine.wrappers.RAG_TEMPLATE); kept
# here because importing that module loads lm-eval, which the web process must not.
RAG_TEMPLATE = "Use these documents to answer.\n\n{passages}\n\nQuestion: {question}"
_lock = threading.Lock()


@lru_cache(maxsize=8)
def _retriever(name: str, corpus: str, content_hash: str):
    """One index per suite version and process (BM25 over ~100 documents builds in milliseconds)."""
    from evaluator.engine.retrievers import make_retriever

    return make_retriever(name, Path(corpus))


def _corpus_path(suite) -> Path:
    from evaluator.suites_registry import read_manifest

    manifest = read_manifest(Path(suite.path))
    return Path(suite.path) / (manifest.corpus or "corpus.jsonl")


def gateway_routed() -> bool:
    """Whether the serving gateway's chat endpoint is mounted in this process's URLconf."""
    try:
        resolve("/v1/chat/completions")
    except (Resolver404, NoReverseMatch):
        return False
    return True


def playground(request: HttpRequest) -> HttpResponse:
    chosen = request.GET.get("base", "").strip()
    bases, adapters = selectors.playground_models(user=request.user, base=chosen)
    return render(
        request,
        "web/playground.html",
        {
            "adapters": adapters,
            "base_models": bases,
            "base_choices": selectors.base_model_names(),
            "chosen_base": chosen,
            "suites": selectors.rag_suites(),
            "gateway": gateway_routed(),
        },
    )


@require_GET
def retrieve(request: HttpRequest) -> JsonResponse:
    """``?suite=slug&q=question`` → the top-k passages and the prompt the base model gets."""
    form = RetrieveForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"error": {"code": "invalid", "message": form.errors.as_text()}}, status=400)
    suite = next((s for s in selectors.rag_suites() if s.slug == form.cleaned_data["suite"]), None)
    if suite is None:
        return JsonResponse({"error": {"code": "not_found", "message": "suite not found"}}, status=404)
    corpus = _corpus_path(suite)
    if not corpus.is_file():
        return JsonResponse({"error": {"code": "not_found", "message": f"suite {suite} has no corpus"}}, status=404)
    question = form.cleaned_data["q"]
    try:
        with _lock:  # bm25s is not documented as thread-safe; queries take microseconds
            passages = _retriever(suite.retriever, str(corpus), suite.content_hash).search(question, suite.top_k)
    except ImportError as exc:  # a web-only install without the evaluator's requirements (eval.txt)
        message = f"retriever `{suite.retriever}` is not installed in this process: {exc}"
        return JsonResponse({"error": {"code": "unavailable", "message": message}}, status=503)
    block = "\n".join(f"- {p.render()}" for p in passages)
    return JsonResponse(
        {
            "suite": str(suite),
            "retriever": suite.retriever,
            "top_k": suite.top_k,
            "system": suite.system_instruction,
            "passages": [{"id": p.id, "title": p.title, "text": p.text} for p in passages],
            "prompt": RAG_TEMPLATE.format(passages=block, question=question),
        }
    )
