"""Registering suites: a new version of a suite retires the older ones, so a new upload
gets one job per suite, on its newest version."""

from __future__ import annotations

import json
import shutil

import pytest

from evaluator.models import EvaluationJob, Suite
from evaluator.services import evaluation_request, suite_register
from hub.exceptions import Conflict
from tests.factories import AdapterVersionFactory

pytestmark = pytest.mark.django_db


def _bumped(shipped_suites, tmp_path, version: str):
    folder = tmp_path / f"acme-{version}"
    shutil.copytree(shipped_suites["acme-products"].path, folder)
    manifest = json.loads((folder / "suite.json").read_text())
    (folder / "suite.json").write_text(json.dumps({**manifest, "version": version}))
    return folder


def test_a_new_version_retires_the_older_ones(shipped_suites, tmp_path, django_capture_on_commit_callbacks):
    old = shipped_suites["acme-products"]
    assert old.active
    new = suite_register(folder=_bumped(shipped_suites, tmp_path, "9.0.0"))
    old.refresh_from_db()
    assert new.active and not old.active
    assert list(Suite.objects.filter(slug="acme-products", active=True)) == [new]
    assert not Suite.objects.get(slug="general").active  # general suites are never scored on their own

    version = AdapterVersionFactory()
    with django_capture_on_commit_callbacks(execute=False):
        jobs = evaluation_request(version=version)
    assert [job.suite for job in jobs] == [new]
    assert EvaluationJob.objects.filter(version=version).count() == 1


def test_registering_the_same_content_again_changes_nothing(shipped_suites, tmp_path):
    folder = _bumped(shipped_suites, tmp_path, "9.0.0")
    first = suite_register(folder=folder)
    assert suite_register(folder=folder) == first
    assert Suite.objects.filter(slug="acme-products").count() == 2
    (folder / "corpus.jsonl").write_text('{"id": "x", "title": "", "text": "other"}\n')
    with pytest.raises(Conflict, match=r"bump `version` in suite\.json"):
        suite_register(folder=folder)


def test_an_inactive_new_version_leaves_the_active_one(shipped_suites, tmp_path):
    new = suite_register(folder=_bumped(shipped_suites, tmp_path, "9.0.0"), active=False)
    assert not new.active and Suite.objects.get(pk=shipped_suites["acme-products"].pk).active


def test_the_migration_retires_older_active_versions(shipped_suites, tmp_path):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("evaluator.migrations.0004_retire_older_suite_versions")
    new = suite_register(folder=_bumped(shipped_suites, tmp_path, "9.0.0"))
    Suite.objects.update(active=True)  # as a database from before this rule may hold them
    migration.retire_older_versions(apps, None)
    assert set(Suite.objects.filter(active=True)) == {new, Suite.objects.get(slug="general")}
