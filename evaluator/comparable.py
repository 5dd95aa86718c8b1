"""What a leaderboard row ran on, and which rows may be ranked together.

Two scores are comparable only when they came from the same suite content, the same base
revision, the same lm-eval version and the same task definitions. Each arm run stores
those (``ArmRun.suite_hash``, ``base_revision``, ``repro["lm_eval"]``,
``repro["task_hashes"]``); a job's *basis* is their union over the job's runs, and its
*comparable key* a short hash of it. Rows with different keys are put in separate groups:
the newest group is ranked, the others are shown apart, unranked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from .models import EvaluationJob


def run_bases(job_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each job's basis from its stored runs, in one query (only the repro keys it needs:
    a run's repro also holds every retrieved passage id)."""
    through = EvaluationJob.runs.through
    rows = through.objects.filter(evaluationjob_id__in=list(job_ids)).values_list(
        "evaluationjob_id", "armrun__suite_hash", "armrun__base_revision", "armrun__repro__lm_eval",
        "armrun__repro__task_hashes",
    )  # fmt: skip
    gathered: dict[int, dict[str, set | dict]] = {}
    for job_id, suite_hash, base_revision, lm_eval, task_hashes in rows:
        basis = gathered.setdefault(
            job_id, {"suite_hashes": set(), "base_revisions": set(), "lm_eval": set(), "task_hashes": {}}
        )
        basis["suite_hashes"].add(suite_hash)  # type: ignore[union-attr]
        basis["base_revisions"].add(base_revision)  # type: ignore[union-attr]
        basis["lm_eval"].add(lm_eval or "unknown")  # type: ignore[union-attr]
        basis["task_hashes"].update(task_hashes or {})  # type: ignore[union-attr]
    return {job_id: _finish(b) for job_id, b in gathered.items()}


def _finish(basis: dict) -> dict[str, Any]:
    out = {
        # Several values mean the job mixed runs (a base arm reused from an older lm-eval):
        # shown as they are, and such a job is comparable only with the same mix.
        "base_revision": ",".join(sorted(basis["base_revisions"])),
        "lm_eval": ",".join(sorted(basis["lm_eval"])),
        "task_hashes": dict(sorted(basis["task_hashes"].items())),
    }
    blob = json.dumps({**out, "suite_hashes": sorted(basis["suite_hashes"])}, sort_keys=True)
    out["comparable"] = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return out


def short_task_hashes(task_hashes: dict[str, str]) -> str:
    """``task=hash12;...``: the CSV cell and the page's title text."""
    return ";".join(f"{task}={digest[:12]}" for task, digest in sorted(task_hashes.items()))


def group_order(jobs: Iterable[EvaluationJob], bases: dict[int, dict[str, Any]]) -> list[str]:
    """Comparable keys, newest first: the newest suite version's, then by newest finished job."""
    newest: dict[str, tuple] = {}
    for job in jobs:
        key = bases[job.pk]["comparable"]
        newest[key] = max(newest.get(key, ()), (job.suite.created_at, job.finished_at))
    return sorted(newest, key=lambda k: newest[k], reverse=True)


def group_rows(rows: list[dict]) -> list[dict]:
    """The groups of sorted leaderboard rows (each row has ``group``, 0 for the newest and
    ranked one), each with what its runs ran on."""
    groups: dict[int, dict] = {}
    for row in rows:
        group = groups.get(row["group"])
        if group is None:
            group = groups[row["group"]] = {
                "comparable": row["comparable"],
                "ranked": row["group"] == 0,
                **{field: row[field] for field in BASIS_COLUMNS},
                "rows": [],
            }
        group["rows"].append(row)
    return [groups[i] for i in sorted(groups)]


BASIS_COLUMNS = ("suite_version", "base_revision", "lm_eval", "task_hashes")
