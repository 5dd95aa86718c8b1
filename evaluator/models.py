"""Evaluation: suites, the lm-eval runs of each arm, and jobs that score adapter versions.

An *arm run* is one lm-eval execution: one suite version, one base revision, one arm
(base, base+RAG, adapter, adapter+RAG) and, for adapter arms, one adapter content hash.
Its key makes it reusable: base arms are computed once per suite version and base
revision and shared by every adapter; identical adapter content reuses its runs.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from hub.models import AdapterVersion, BaseModel


class Suite(models.Model):
    """A versioned set of lm-eval tasks with a retrieval corpus and an acceptance policy."""

    class Role(models.TextChoices):
        DOMAIN = "domain"
        GENERAL = "general", "General ability (forgetting)"

    slug = models.SlugField(max_length=100)
    version = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.DOMAIN)
    content_hash = models.CharField(max_length=64, help_text="sha256 over the suite's files")
    path = models.CharField(max_length=500, help_text="folder with suite.json, task YAMLs, data")
    tasks = models.JSONField(default=list, help_text="lm-eval task names")
    retriever = models.CharField(max_length=20, default="bm25")
    top_k = models.PositiveSmallIntegerField(default=3)
    system_instruction = models.TextField(blank=True)
    policy = models.JSONField(default=dict, blank=True)
    general_suite = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="the suite forgetting is measured on",
    )  # fmt: skip
    active = models.BooleanField(default=True, help_text="every new version is scored on it")
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="who registered it (REST or `pefthub suite push`); empty for what the hub installs itself",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["slug", "version"], name="suite_version_unique"),
            models.CheckConstraint(condition=Q(top_k__gte=1), name="suite_top_k_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.slug}@{self.version}"


class ArmRun(models.Model):
    """One lm-eval execution of one arm on one suite; reused wherever its key matches."""

    class Arm(models.TextChoices):
        BASE = "base"
        BASE_RAG = "base_rag", "Base + RAG"
        ADAPTER = "adapter"
        ADAPTER_RAG = "adapter_rag", "Adapter + RAG"

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="runs")
    suite_hash = models.CharField(max_length=64)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    base_revision = models.CharField(max_length=64)
    arm = models.CharField(max_length=12, choices=Arm.choices)
    adapter_hash = models.CharField(max_length=64, blank=True, help_text="empty for base arms")
    backend = models.CharField(max_length=32)
    settings_key = models.CharField(max_length=64, help_text="hash of seed, batch size, limit")
    # what came out
    metrics = models.JSONField(default=dict, help_text="{task: {metric: value, metric_stderr: v}}")
    results = models.JSONField(default=dict, help_text="lm-eval's results JSON")
    samples_blob = models.CharField(max_length=64, blank=True, help_text="per-sample log (JSONL)")
    repro = models.JSONField(default=dict, help_text="lm-eval version, task hashes, seed, ...")
    duration_seconds = models.FloatField(default=0)
    requests = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    # What one request costs (0 on runs stored before they were measured)
    questions = models.PositiveIntegerField(default=0, help_text="questions asked (documents)")
    prompt_tokens = models.BigIntegerField(default=0, help_text="prompt tokens over all questions, passages included")
    model_seconds = models.FloatField(default=0, help_text="seconds spent in the model (and retrieval)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["suite_hash", "base_revision", "arm", "adapter_hash", "backend", "settings_key"],
                name="arm_run_key_unique",
            ),
            models.CheckConstraint(
                condition=(Q(arm__in=["base", "base_rag"]) & Q(adapter_hash=""))
                | (Q(arm__in=["adapter", "adapter_rag"]) & ~Q(adapter_hash="")),
                name="arm_run_adapter_hash_matches_arm",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.suite_id}:{self.arm}:{self.adapter_hash[:8] or 'base'}"


class EvaluationJob(models.Model):
    """Scoring one adapter version on one suite: the unit users watch, re-run and cancel."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Decision(models.TextChoices):
        """The policy's verdict, recorded on the version as its status (hub's AdapterVersion.Status)."""

        ACCEPTED = AdapterVersion.Status.ACCEPTED.value, "Accepted"
        REJECTED = AdapterVersion.Status.REJECTED.value, "Rejected"

    version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="evaluations")
    suite = models.ForeignKey(Suite, on_delete=models.PROTECT, related_name="jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0, help_text="share of lm-eval requests done, 0..1")
    current = models.CharField(max_length=200, blank=True, help_text="what runs now")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    backend = models.CharField(max_length=32)
    runs = models.ManyToManyField(ArmRun, blank=True, related_name="jobs")
    summary = models.JSONField(default=dict, blank=True, help_text="scores per arm, gains, forgetting")
    decision = models.CharField(
        max_length=10, choices=Decision.choices, blank=True, help_text="the policy's verdict; empty until finished"
    )
    reasons = models.JSONField(default=list, blank=True)
    reused = models.BooleanField(default=False, help_text="every run came from an earlier job")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set while this job runs inside another job's shared pass (the worker that claimed the
    # leader scores both); the job's own queue message then has nothing to do.
    batch_leader = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_members",
        help_text="the job whose worker scores this one in a shared pass",
    )  # fmt: skip
    solo = models.BooleanField(default=False, help_text="a failed shared pass set it apart: it runs alone")
    fresh = models.BooleanField(default=False, help_text="recompute every arm instead of reusing stored runs")
    base_revision = models.CharField(
        max_length=64, blank=True, help_text="the base revision scored on; empty: the one the version was made on"
    )
    reevaluation = models.BooleanField(
        default=False, help_text="a live version re-scored on a new suite version or base revision: lowest priority"
    )
    rerun_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reruns",
        help_text="the job this one re-runs",
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="job_progress_in_range"),
            # At most one live job per version and suite: re-runs wait for the last one.
            models.UniqueConstraint(
                fields=["version", "suite"],
                condition=Q(status__in=["pending", "running"]),
                name="job_one_live_per_version_suite",
            ),
            models.CheckConstraint(condition=Q(decision__in=["", "accepted", "rejected"]), name="job_decision_known"),
        ]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.version} on {self.suite} ({self.status})"
