"""Fixtures for the web catalog: real uploads on the tiny base, and evaluations finished by
the evaluator's own services (with lm-eval-shaped samples stored as blobs), so the pages
read exactly what a worker would have written."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.test import TestCase

from tests.factories import client_for
from tests.utils import folder_files, upload

CHROMIUM = os.environ.get("PEFTHUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@pytest.fixture
def suites(db):
    """The shipped suites (acme-products measures forgetting on general)."""
    from django.core.management import call_command

    from evaluator.models import Suite

    call_command("evaluator_install_suites", verbosity=0)
    return {s.slug: s for s in Suite.objects.all()}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Sign-in rate limits count in the cache: each test starts with none spent."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _web_settings(settings, tmp_path):
    """Serving in-process (the peft engine; no vLLM server in these tests), and hub events
    delivered to serving only: the tests below drive the evaluator's services themselves
    (with live_server's transactional database, on_commit would otherwise run a real
    evaluation at once)."""
    settings.PEFTHUB_EVENT_TASKS = {
        "version.created": [],
        "version.accepted": ["serving.version_accepted"],
        "version.deprecated": ["serving.version_deprecated"],
        "version.withdrawn": ["serving.version_withdrawn"],
    }
    settings.PEFTHUB_SERVING_DIR = tmp_path / "serving"
    settings.PEFTHUB_SERVING_ROUTES = {route: "peft" for route in settings.PEFTHUB_SERVING_ROUTES}
    settings.PEFTHUB_VLLM_BASE_MODEL = "none"


@pytest.fixture
def push(tiny_base, lora_dir):
    """``push(user, "alice/name", folder=None, private=False, readme=None, **metadata)`` -> version."""
    from hub.models import AdapterVersion

    def push(user, full_name: str, folder: Path | None = None, *, private: bool = False, readme=None, **metadata):
        client = client_for(user)
        namespace, name = full_name.split("/")
        response = client.post(
            "/api/v1/adapters/", {"namespace": namespace, "name": name, "private": private}, format="json"
        )
        assert response.status_code in (201, 409), response.json()
        files = folder_files(folder or lora_dir)
        files["README.md"] = (readme if readme is not None else f"# {full_name}\n").encode()
        # A side file of its own keeps each push's answers distinct: the card is not part of
        # the answers hash, so identical weights and config would reuse another adapter's
        # evaluation (hub.validation.files.answers_hash).
        files["notes.txt"] = f"{full_name}\n".encode()
        metadata.setdefault("license", "apache-2.0")
        response = upload(client, full_name, files, metadata=metadata)
        assert response.status_code in (200, 201), response.json()
        return AdapterVersion.objects.get(pk=response.json()["id"])

    return push


@dataclass
class ArmResult:
    """What one arm "answered": a right/wrong per question and task."""

    right: dict[str, list[bool]] = field(default_factory=dict)


def _samples(suite_dir: Path, task: str, right: list[bool]) -> list[dict]:
    """lm-eval's logged samples (``log_samples``) for the first questions of a suite task."""
    docs = [json.loads(line) for line in (suite_dir / "test.jsonl").read_text().splitlines()[: len(right)]]
    rows = []
    for doc_id, (doc, ok) in enumerate(zip(docs, right, strict=True)):
        if task.endswith("_mc"):
            label = doc["label"]
            scores = [[-5.0 - i, False] for i in range(len(doc["choices"]))]
            pick = label if ok else (label + 1) % len(doc["choices"])
            scores[pick] = [-0.5, True]
            rows.append(
                {
                    "task": task,
                    "doc_id": doc_id,
                    "doc": doc,
                    "target": label,
                    "arguments": [[doc["question"], f" {c}"] for c in doc["choices"]],
                    "resps": [[s] for s in scores],
                    "filtered_resps": scores,
                    "filter": "none",
                    "metrics": ["acc", "acc_norm"],
                    "acc": float(ok),
                    "acc_norm": float(ok),
                }
            )
        else:
            text = f"It is {doc['answer']}." if ok else "I do not know."
            rows.append(
                {
                    "task": task,
                    "doc_id": doc_id,
                    "doc": doc,
                    "target": doc["answer"],
                    "arguments": [[doc["question"], {"until": ["\n\n"]}]],
                    "resps": [[text]],
                    "filtered_resps": [text],
                    "filter": "none",
                    "metrics": ["answer_match"],
                    "answer_match": float(ok),
                }
            )
    return rows


class _Outcome:
    def __init__(self, suite, right: dict[str, list[bool]], *, rag: bool = False) -> None:
        lines, self.metrics = [], {}
        for task in suite.tasks:
            ok = right[task]
            samples = _samples(Path(suite.path), task, ok)
            lines += [json.dumps(s, sort_keys=True) for s in samples]
            value = sum(ok) / len(ok)
            metric = "acc" if task.endswith("_mc") else "answer_match"
            self.metrics[task] = {metric: value, f"{metric}_stderr": (value * (1 - value) / len(ok)) ** 0.5}
        self.samples_jsonl = ("\n".join(lines) + "\n").encode()
        self.results = {"results": self.metrics}
        self.repro = {"seed": 1234, "backend": "hf"}
        self.duration_seconds = 1.0
        self.requests = sum(len(v) for v in right.values())
        self.tokens = 100
        self.retrieved = {}
        # a RAG arm's prompts carry passages: longer, and slower to read
        self.questions = sum(len(v) for v in right.values())
        self.prompt_tokens = self.questions * (400 if rag else 40)
        self.model_seconds = self.questions * (0.05 if rag else 0.02)


def _pattern(share: float, n: int = 4) -> list[bool]:
    right = round(share * n)
    return [i < right for i in range(n)]


KEPT = {"base": 1.0, "adapter": 1.0}  # general-suite scores of an adapter that forgets nothing


@pytest.fixture
def evaluate(suites, monkeypatch):
    """``evaluate(version, {"base": .25, "base_rag": .75, "adapter": .5, "adapter_rag": .5},
    general={"base": 1, "adapter": .75})`` runs the job through the evaluator's services.
    ``general`` has no default: each test says whether its adapter forgets (``KEPT``: no).

    The job is queued as usual, but no worker picks it up (as with a broker and no worker);
    the fixture plays the worker's part with lm-eval-shaped outcomes.
    """
    from evaluator import lifecycle, planning, services
    from evaluator.models import EvaluationJob
    from evaluator.tasks import run_evaluation_job

    monkeypatch.setattr(run_evaluation_job, "apply_async", lambda *args, **kwargs: None)

    def evaluate(version, domain: dict[str, float], general: dict[str, float] | None = None, *, finish=True):
        (job,) = services.evaluation_request(version=version)
        if not finish:
            return job
        if general is None:
            raise TypeError("evaluate(): give the general suite's scores, general=KEPT or {'base': .., 'adapter': ..}")
        lifecycle.job_start(job_id=job.pk)
        job = EvaluationJob.objects.select_related("suite", "version").get(pk=job.pk)
        for planned in planning.plan(job):
            shares = domain if planned.suite.pk == job.suite_id else general
            right = {task: _pattern(shares[planned.arm]) for task in planned.suite.tasks}
            lifecycle.arm_run_store(
                key=planning.run_key(job, planned),
                suite=planned.suite,
                job=job,
                outcome=_Outcome(planned.suite, right, rag=planned.arm in planning.RAG_ARMS),
            )
        # The decision emits version.accepted after commit (serving deploys accepted versions);
        # run it now, as a real commit would.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return lifecycle.job_finish(job_id=job.pk)

    return evaluate


# --- browsers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (never Playwright's own download).

    Module-scoped: while Playwright's sync API is open, this thread counts as running an
    event loop, so Django refuses ORM calls unless ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set
    (live_server and the test share this process). Both end with the e2e module.
    """
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.skip(f"chromium is not installed ({CHROMIUM}); scripts/install-browser installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable,
                args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                ],
            )  # fmt: skip
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser, live_server, request):
    """A fresh page on the live server that refuses every request to another origin."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    context.close()
    assert not outside, f"the page tried to reach the internet: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def login(page, user, live_server) -> None:
    """Sign a user in through the real sign-in form."""
    user.set_password("pw-for-tests")
    user.save()
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-for-tests")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
