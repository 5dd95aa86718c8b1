"""End to end in a real headless Chromium (Debian's, driven by Playwright) against live_server.

Screenshots land in ``test-artifacts/web/``. The page fixture aborts, and fails the test
on, any request that leaves the live server, and on any JavaScript error.
"""

from __future__ import annotations

import json
import shutil

import pytest
from django.urls import Resolver404, resolve

from evaluator import lifecycle as eval_lifecycle
from evaluator.models import EvaluationJob
from tests.web.conftest import KEPT, login, shot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GOOD = {"base": 0.0, "base_rag": 0.75, "adapter": 0.75, "adapter_rag": 0.5}
WEAK = {"base": 0.0, "base_rag": 0.75, "adapter": 0.25, "adapter_rag": 0.5}


@pytest.fixture
def catalog(alice, bob, push, evaluate):
    good = push(alice, "alice/support-bot", task_tags=["qa"], readme="# Support bot\n\nKnows the Acme catalogue.")
    evaluate(good, GOOD, general=KEPT)
    weak = push(bob, "bob/weak-bot", task_tags=["chat"], license="mit")
    evaluate(weak, WEAK, general=KEPT)
    push(bob, "bob/unscored", task_tags=["qa"])
    return {"good": good, "weak": weak}


def cards(page) -> list[str]:
    return page.eval_on_selector_all("#results .adapter-card", "els => els.map(e => e.dataset.adapter)")


def test_search_and_filter_the_catalog(page, catalog):
    page.goto("/adapters/")
    assert page.title() == "Catalog · pefthub"
    assert sorted(cards(page)) == ["alice/support-bot", "bob/unscored", "bob/weak-bot"]
    page.fill("#id_q", "bob")
    page.press("#id_q", "Enter")
    page.wait_for_url("**/adapters/?q=bob*")
    assert sorted(cards(page)) == ["bob/unscored", "bob/weak-bot"]
    page.select_option("#id_task", "qa")
    page.click("text=Apply")  # no submit on change: arrow keys in a select must not navigate
    page.wait_for_url("**task=qa*")
    assert cards(page) == ["bob/unscored"]
    assert page.input_value("#id_q") == "bob"  # filters are kept
    page.fill("#id_q", "")
    page.select_option("#id_status", "accepted")
    page.press("#id_q", "Enter")
    page.wait_for_url("**status=accepted*")
    assert cards(page) == ["alice/support-bot"]
    shot(page, "catalog-filtered")
    page.click("text=Clear filters")
    page.wait_for_url("**/adapters/")
    page.select_option("#id_sort", "-score")
    page.focus("#id_sort")
    page.keyboard.press("Tab")  # the keyboard reaches the Apply button next
    page.keyboard.press("Enter")
    page.wait_for_url("**sort=-score*")
    assert cards(page)[:2] == ["alice/support-bot", "bob/weak-bot"]
    # the same page on a phone: no horizontal scrolling of the page itself
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "catalog-phone")


def test_adapter_page_draws_its_chart(page, catalog):
    page.goto("/adapters/alice/support-bot/")
    assert page.title() == "alice/support-bot v1 · pefthub"
    canvas = page.wait_for_selector("canvas[data-arms-chart][data-drawn=true]")
    chart = page.evaluate(
        """c => { const sets = Chart.getChart(c).data.datasets;
                   return {arms: sets.map(d => d.label), values: sets.map(d => d.data)}; }""",
        canvas,
    )
    assert chart["arms"] == ["Base", "Base + RAG", "Adapter", "Adapter + RAG"]
    assert [row[-1] for row in chart["values"]] == [0.0, 0.75, 0.75, 0.5]  # the averages
    painted = page.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
        canvas,
    )
    assert painted > 1000, "the canvas is blank"
    # the snippet tabs work from the keyboard
    page.focus("#tab-openai")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#panel-peft") and not page.is_visible("#panel-openai")
    assert "PeftModel.from_pretrained" in page.inner_text("#panel-peft")
    shot(page, "adapter-page")
    page.click("text=Browse the questions and each arm's answers →")
    page.wait_for_selector("table.samples td.answer.right")
    shot(page, "samples")


def test_sort_the_leaderboard(page, catalog):
    page.goto("/leaderboard/")
    rows = lambda: page.eval_on_selector_all("#leaderboard tbody tr", "els => els.map(e => e.dataset.adapter)")  # noqa: E731
    assert rows() == ["alice/support-bot", "bob/weak-bot"]
    page.wait_for_selector("canvas[data-scatter-chart][data-drawn=true]")
    assert page.evaluate("Chart.getChart(document.getElementById('scatter')).data.datasets[0].data.length") == 2
    page.click("th a[data-sort=average]")  # currently descending: click sorts ascending
    page.wait_for_url("**ordering=average*")
    assert rows() == ["bob/weak-bot", "alice/support-bot"]
    assert page.get_attribute("th[aria-sort]", "aria-sort") == "ascending"
    page.click("th a[data-sort=average]")
    page.wait_for_url("**ordering=-average*")
    assert rows() == ["alice/support-bot", "bob/weak-bot"]
    shot(page, "leaderboard")


def test_watch_a_running_evaluation_progress(page, alice, push, evaluate):
    from playwright.sync_api import expect

    version = push(alice, "alice/training-bot")
    job = evaluate(version, GOOD, finish=False)
    eval_lifecycle.job_start(job_id=job.pk)
    eval_lifecycle.jobs_progress(job_ids=[job.pk], progress=0.1, current="acme-products · Base: acme_mc")
    page.goto("/evaluations/")
    cell = f"#job-{job.pk}-progress"
    assert "10.0%" in page.inner_text(cell)
    page.evaluate("window.sameDocument = true")
    shot(page, "queue-10")
    eval_lifecycle.jobs_progress(job_ids=[job.pk], progress=0.6, current="acme-products · Adapter + RAG: acme_qa")
    # Polled by Playwright's own world: a predicate string would be eval'd in the page, which
    # the site's CSP (script-src 'self') forbids, as it should.
    expect(page.locator(cell)).to_contain_text("60.0%", timeout=30_000)
    assert "Adapter + RAG: acme_qa" in page.inner_text(cell)
    assert page.evaluate("window.sameDocument") is True, "the page reloaded"
    shot(page, "queue-60")
    eval_lifecycle.jobs_fail(job_ids=[job.pk], error="RuntimeError: out of memory")
    expect(page.locator(cell)).to_have_attribute("data-status", "failed", timeout=30_000)
    assert page.get_attribute(cell, "hx-trigger") is None  # polling stops with the job
    assert EvaluationJob.objects.get(pk=job.pk).status == "failed"


# --- playground ------------------------------------------------------------------------------
def gateway_routed() -> bool:
    try:
        resolve("/v1/chat/completions")
    except Resolver404:
        return False
    return True


@pytest.fixture
def live_adapter(alice, push, evaluate, suites):
    version = push(alice, "alice/live-bot")
    evaluate(version, {"base": 0.0, "base_rag": 0.75, "adapter": 1.0, "adapter_rag": 1.0}, general=KEPT)
    version.refresh_from_db()
    assert version.status == "accepted"
    return version


def ask(page, prompt: str, *, rag: bool = True) -> None:
    page.goto("/playground/")
    page.check("input[value='alice/live-bot@v1']")
    page.check("input[value='tiny-llama']")
    page.select_option("#rag-suite", "acme-products" if rag else "")
    page.fill("#max-tokens", "16")
    page.fill("#prompt", prompt)
    page.click("#send")


@pytest.fixture
def served_tiny(tiny_base, request, settings):
    """The tiny llama re-registered with a tokenizer, so the in-process peft engine can answer."""
    from serving.engines.registry import reset_engines
    from tests.factories import TINY, register_base, save_char_tokenizer

    folder = request.getfixturevalue("tmp_path") / "tiny-llama-served"
    shutil.copytree(tiny_base.local_path, folder)
    save_char_tokenizer(folder, TINY["vocab_size"])
    reset_engines()  # engines are per process and base name: none may hold the tokenizer-less folder
    base = register_base(folder, "tiny-llama", "test-org/tiny-llama", "0" * 64)
    assert base.local_path == str(folder)
    yield base
    reset_engines()


@pytest.mark.skipif(
    not gateway_routed(),
    reason="the serving gateway (issue 4) is not routed: /v1/chat/completions does not resolve in config.urls",
)
def test_playground_streams_answers_from_the_gateway(page, live_server, alice, served_tiny, live_adapter):
    """The real gateway (serving's in-process peft engine on the tiny llama) streams to the page.

    No RAG column here: the suite's passages are longer than the tiny model's 128 positions;
    the next test covers that column's request.
    """
    login(page, alice, live_server)
    ask(page, "How much does the Quillfen Kettle cost?", rag=False)
    for model in ("alice/live-bot@v1", "tiny-llama"):
        column = page.wait_for_selector(f"#answers .column[data-model='{model}'][data-done=true]", timeout=120_000)
        assert column.query_selector(".output").inner_text().strip(), model
    assert page.query_selector("#answers .column[data-error]") is None, page.inner_text("#answers")
    shot(page, "playground")


def test_playground_renders_a_contract_shaped_stream(page, live_server, alice, live_adapter):
    """The page's side of the contract, with the gateway's answer played back by the browser.

    Each model's request is answered with OpenAI-style SSE chunks; this checks what the
    page sends (model, messages, stream, CSRF header, the RAG prompt) and that it joins the
    deltas in order. The real gateway is exercised by the test above.
    """
    sent: list[dict] = []

    def gateway(route):
        request = route.request
        body = json.loads(request.post_data)
        sent.append({"body": body, "csrf": request.headers.get("x-csrftoken")})
        words = ["Answer ", "from ", body["model"], "."]
        chunks = "".join(
            "data: "
            + json.dumps({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}}]})
            + "\n\n"
            for w in words
        )
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=chunks + "data: [DONE]\n\n")

    login(page, alice, live_server)
    page.route("**/v1/chat/completions", gateway)
    ask(page, "How much does the Quillfen Kettle cost?")
    for model in ("alice/live-bot@v1", "tiny-llama"):
        column = page.wait_for_selector(f"#answers .column[data-model='{model}'][data-done=true]")
        assert column.query_selector(".output").inner_text() == f"Answer from {model}."
    rag = page.wait_for_selector("#answers .column[data-kind=rag][data-done=true]")
    assert rag.query_selector(".output").inner_text() == "Answer from tiny-llama."
    assert rag.query_selector(".passages li").inner_text().startswith("Quillfen Kettle:")
    assert len(sent) == 3
    assert all(s["body"]["stream"] is True and s["body"]["max_tokens"] == 16 for s in sent)
    assert all(s["csrf"] and len(s["csrf"]) in (32, 64) for s in sent)  # Django's token, masked or not
    rag_request = next(
        s["body"] for s in sent if s["body"]["messages"][-1]["content"].startswith("Use these documents")
    )
    assert rag_request["model"] == "tiny-llama"
    assert rag_request["messages"][0] == {"role": "system", "content": "Answer the question in one short sentence."}
    assert "- Quillfen Kettle: The Quillfen Kettle is an electric kettle" in rag_request["messages"][-1]["content"]
    shot(page, "playground-contract")
