"""What the client's calls hand back: a push, a pull, a version's evaluation status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import evaluation
from .text import human_size
from .types import EvaluationJob, Version


@dataclass(frozen=True)
class PushResult:
    """What an upload made: the version, and whether this request created it (False:
    the files equal the adapter's newest version, which the hub handed back; after a
    retry that version may be the one an earlier, cut-off try stored). ``tries`` counts
    the uploads sent."""

    repo: str
    version: int
    content_hash: str
    created: bool
    url: str
    data: Version = field(repr=False)
    tries: int = 1

    def summary(self) -> str:
        files = self.data.get("files", [])
        size = sum(f["size"] for f in files)
        if self.created:
            what = "new version"
        elif self.tries > 1:
            what = (
                "stored: an earlier try got through before its connection dropped, "
                "or the files equal the newest version"
            )
        else:
            what = "unchanged: same files as the newest version"
        return (
            f"{self.repo} v{self.version} ({what}; {len(files)} files, {human_size(size)}, "
            f"content hash {self.content_hash[:12]})\n"
            f"evaluation: {self.url} (status: {self.data.get('status', 'unknown')})"
        )


@dataclass(frozen=True)
class PullResult:
    repo: str
    version: int
    path: Path
    files: list[str]
    downloaded: list[str]


@dataclass(frozen=True)
class EvaluationStatus:
    """Where a version stands. ``status`` is the hub's verdict (pending, accepted,
    rejected) and ``reasons`` why; ``jobs`` are its evaluation jobs, one per suite and
    re-run, newest first (None: the hub does not report evaluations)."""

    repo: str
    version: int
    status: str
    reasons: list[Any]
    jobs: list[EvaluationJob] | None
    url: str
    deprecated: bool

    @property
    def outcome(self) -> str | None:
        """accepted, rejected, failed or cancelled once the evaluation is over; else None."""
        return evaluation.outcome(self.status, self.jobs)

    @property
    def progress(self) -> float:
        """The share of the evaluation done, 0..1, over every suite."""
        return evaluation.overall_progress(self.jobs)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "version": self.version,
            "status": self.status,
            "reasons": self.reasons,
            "outcome": self.outcome,
            "progress": self.progress,
            "evaluations": self.jobs,
            "url": self.url,
        }

    def describe(self) -> str:
        lines = [f"{self.repo} v{self.version}: {self.status}" + (" (deprecated)" if self.deprecated else "")]
        latest = evaluation.latest_per_suite(self.jobs or [])
        # A finished job's reasons are the version's; they are shown once, under the job.
        if not any(list(job.get("reasons") or []) == list(self.reasons) for job in latest):
            lines += [f"  - {r if isinstance(r, str) else json.dumps(r)}" for r in self.reasons]
        if self.jobs is None:
            lines.append("evaluation: this hub does not report evaluations")
        elif not latest:
            if self.status == "pending":
                lines.append(
                    "evaluation: no job yet; the status changes once the evaluation service has scored the version"
                )
            else:
                lines.append("evaluation: none (the status was set without an evaluation)")
        else:
            done, now = evaluation.overall_progress(latest)
            jobs = f"{len(latest)} suite" + ("s" if len(latest) > 1 else "")
            lines.append(f"evaluation: {jobs}, {done:.0%} done" + (f", now: {now}" if self.outcome is None else ""))
            for job in latest:
                lines += evaluation.describe_job(job)
        lines.append(f"url: {self.url}")
        return "\n".join(lines)
