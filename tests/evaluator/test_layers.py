"""Who may import whom inside the evaluator: the worker's side never enqueues (so never
imports ``evaluator.tasks`` or the API's writes), and the evaluator never imports the
training recipes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER_SIDE = ["evaluator/runjob.py", "evaluator/lifecycle.py", "evaluator/planning.py", "evaluator/policy.py"]


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative ones resolved against ``evaluator``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ("evaluator." if node.level else "") + (node.module or "")
            names.add(base.rstrip("."))
            names |= {f"{base.rstrip('.')}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize(
    "module", WORKER_SIDE + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "evaluator/engine").glob("*.py"))
)
def test_the_worker_side_never_enqueues(module):
    imported = _imports(ROOT / module)
    assert not {"evaluator.tasks", "evaluator.services"} & imported, f"{module} imports {imported}"


def test_the_evaluator_never_imports_the_recipes():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "evaluator").rglob("*.py")
        if any(name == "recipes" or name.startswith("recipes.") for name in _imports(p))
    ]
    assert offenders == []


def test_the_task_enqueues_what_the_worker_gives_back(db, monkeypatch, django_capture_on_commit_callbacks):
    from evaluator import runjob, tasks

    sent = []
    monkeypatch.setattr(runjob, "execute_job", lambda job_id: [job_id + 1, job_id + 2])
    monkeypatch.setattr(tasks.run_evaluation_job, "apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_evaluation_job(40)
    assert sent == [([41], "evaluation"), ([42], "evaluation")]


@pytest.mark.parametrize(
    ("named", "queue"),
    [
        ([], "evaluation"),  # the default: one queue
        (["llama-3.1-8b-instruct"], "evaluation"),  # another base has a worker of its own; this one falls back
        (["llama-3.1-8b-instruct", "Tiny-Base"], "evaluation.tiny-base"),  # names match as base names do
        (["*"], "evaluation.tiny-base"),  # every base has its own worker
    ],
)
def test_jobs_go_to_their_base_models_queue_only_where_it_has_a_worker(
    db, settings, monkeypatch, django_capture_on_commit_callbacks, named, queue
):
    from evaluator import services, tasks
    from tests.factories import EvaluationJobFactory

    settings.PEFTHUB_EVAL_BASE_QUEUES = named
    job = EvaluationJobFactory()
    sent = []
    monkeypatch.setattr(tasks.run_evaluation_job, "apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        services._enqueue(job)
        tasks.jobs_enqueue([job.pk + 1000])  # gone from the table: the common queue
    assert sent == [([job.pk], queue), ([job.pk + 1000], "evaluation")]
