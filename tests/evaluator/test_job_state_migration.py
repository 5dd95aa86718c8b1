"""Migration 0003 moves `solo`, `fresh` and `rerun_of` out of the job summary into columns,
and back on the way down."""

from __future__ import annotations

import importlib

from django.apps import apps

from evaluator.models import EvaluationJob
from tests.factories import EvaluationJobFactory

migration = importlib.import_module("evaluator.migrations.0003_job_state_columns")


def test_summary_state_moves_to_columns_and_back(db):
    first = EvaluationJobFactory(summary={"score": 0.5})
    rerun = EvaluationJobFactory(summary={"score": 0.5, "rerun_of": first.pk, "fresh": True, "solo": True})
    orphan = EvaluationJobFactory(summary={"rerun_of": 999_999})  # its original was deleted

    migration.summary_to_columns(apps, None)
    rerun, orphan, first = (EvaluationJob.objects.get(pk=j.pk) for j in (rerun, orphan, first))
    assert (rerun.solo, rerun.fresh, rerun.rerun_of_id, rerun.summary) == (True, True, first.pk, {"score": 0.5})
    assert (orphan.rerun_of_id, orphan.summary) == (None, {})
    assert (first.solo, first.fresh, first.rerun_of_id, first.summary) == (False, False, None, {"score": 0.5})

    migration.columns_to_summary(apps, None)
    rerun.refresh_from_db()
    assert rerun.summary == {"score": 0.5, "rerun_of": first.pk, "fresh": True, "solo": True}
    first.refresh_from_db()
    assert first.summary == {"score": 0.5}
