from __future__ import annotations

from rest_framework import serializers

from .models import ArmRun, EvaluationJob, Suite
from .selectors import LEADERBOARD_ORDERINGS


class SuiteOut(serializers.ModelSerializer):
    general_suite = serializers.SerializerMethodField()
    registered_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Suite
        fields = [
            "slug", "version", "name", "description", "role", "content_hash", "tasks", "retriever",
            "top_k", "system_instruction", "policy", "general_suite", "active", "registered_by", "created_at",
        ]  # fmt: skip

    def get_general_suite(self, obj: Suite) -> str | None:
        return str(obj.general_suite) if obj.general_suite_id else None


class SuiteUploadIn(serializers.Serializer):
    archive = serializers.FileField(help_text="a tar or tar.gz of the suite folder (suite.json, test.jsonl, ...)")


class ArmRunOut(serializers.ModelSerializer):
    suite = serializers.CharField(source="suite.__str__")

    class Meta:
        model = ArmRun
        fields = [
            "id", "suite", "arm", "backend", "base_revision", "adapter_hash", "metrics", "repro",
            "duration_seconds", "requests", "tokens", "questions", "prompt_tokens", "model_seconds", "samples_blob",
            "created_at",
        ]  # fmt: skip


class JobOut(serializers.ModelSerializer):
    suite = serializers.CharField(source="suite.__str__")
    adapter = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = EvaluationJob
        fields = [
            "id", "adapter", "version", "suite", "status", "progress", "current", "error", "attempts",
            "backend", "decision", "reasons", "summary", "reused", "batch_leader", "solo", "fresh", "rerun_of",
            "base_revision", "reevaluation",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        extra_kwargs = {"batch_leader": {"help_text": "the job whose worker scores this one in a shared pass"}}

    def get_adapter(self, obj: EvaluationJob) -> str:
        return f"{obj.version.adapter.namespace.name}/{obj.version.adapter.name}"


class JobDetailOut(JobOut):
    runs = ArmRunOut(many=True)

    class Meta(JobOut.Meta):
        fields = [*JobOut.Meta.fields, "runs"]


class JobQueryIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=EvaluationJob.Status.values, required=False, allow_blank=True, default="")
    adapter = serializers.RegexField(r"^[^/]+/[^/]+$", required=False, allow_blank=True, default="")


class LeaderboardQueryIn(serializers.Serializer):
    base_model = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    accepted = serializers.BooleanField(required=False, default=False)
    ordering = serializers.ChoiceField(choices=sorted(LEADERBOARD_ORDERINGS), required=False, default="-average")
    export = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")
