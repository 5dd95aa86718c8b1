"""`pefthub suite push FOLDER` registers a suite written as suite.json + JSONL on a live
hub (staff only); a bad suite is refused with the hub's message and nothing is stored."""

from __future__ import annotations

import json

import pytest

from evaluator.models import Suite
from tests.client.conftest import run_cli
from tests.evaluator.suite_samples import write_suite

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_env(cli_env, alice, settings, tmp_path):
    from django.core.management import call_command

    settings.PEFTHUB_SUITES_DIR = tmp_path / "suites"
    call_command("evaluator_install_suites", verbosity=0)  # the general suite forgetting is measured on
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    return cli_env


def test_suite_push_registers_a_data_only_suite(staff_env, tmp_path):
    folder = write_suite(tmp_path / "quarrow")
    (folder / "build_data.py").write_text("print('a generator the hub does not need')\n")

    result = run_cli(staff_env, "suite", "push", str(folder))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "registered: quarrow-rules@1.0.0 (domain, tasks: quarrow_mc, quarrow_qa)"
    assert "not sent (not suite data): build_data.py" in result.stderr
    suite = Suite.objects.get(slug="quarrow-rules")
    assert suite.active and suite.tasks == ["quarrow_mc", "quarrow_qa"]

    again = run_cli(staff_env, "suite", "push", str(folder), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["content_hash"] == suite.content_hash
    assert Suite.objects.filter(slug="quarrow-rules").count() == 1


def test_suite_push_of_a_bad_suite_prints_what_to_fix(staff_env, tmp_path):
    folder = write_suite(tmp_path / "bad")
    lines = (folder / "test.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"label": 0', '"label": 7')
    (folder / "test.jsonl").write_text("\n".join(lines) + "\n")

    result = run_cli(staff_env, "suite", "push", str(folder))

    assert result.returncode == 1
    assert result.stderr.strip() == ("error: test.jsonl line 2: `label` is 7, but there are 4 choices (0 to 3)")
    assert not Suite.objects.filter(slug="quarrow-rules").exists()
    assert not [p for p in (tmp_path / "suites").glob("*") if not p.name.startswith("_")]


def test_suite_push_needs_staff(cli_env, tmp_path, settings):
    settings.PEFTHUB_SUITES_DIR = tmp_path / "suites"
    result = run_cli(cli_env, "suite", "push", str(write_suite(tmp_path / "s")))
    assert result.returncode == 1
    assert "user `alice` is not staff; registering a suite is for staff users only" in result.stderr
    assert not Suite.objects.exists()
