"""Serving's API shapes (translation only)."""

from __future__ import annotations

from rest_framework import serializers

from .models import Deployment, ModelUsage, Placement, Replica
from .selectors import version_label


class UsageOut(serializers.ModelSerializer):
    base_model = serializers.CharField(source="base_model.name")
    mean_latency_seconds = serializers.SerializerMethodField()

    class Meta:
        model = ModelUsage
        fields = [
            "model",
            "base_model",
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "latency_seconds_total",
            "mean_latency_seconds",
            "last_request_at",
        ]

    def get_mean_latency_seconds(self, usage: ModelUsage) -> float | None:
        return round(usage.latency_seconds_total / usage.requests, 4) if usage.requests else None


class DeploymentOut(serializers.ModelSerializer):
    model = serializers.SerializerMethodField()
    base_model = serializers.CharField(source="version.base_model.name")
    deployed_by = serializers.CharField(source="deployed_by.username", default=None)
    usage = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "model",
            "base_model",
            "live",
            "reason",
            "engine",
            "deployed_by",
            "created_at",
            "updated_at",
            "last_used_at",
            "usage",
        ]

    def get_model(self, deployment: Deployment) -> str:
        return version_label(deployment.version)

    def get_usage(self, deployment: Deployment) -> dict | None:
        usage = ModelUsage.objects.filter(version=deployment.version).select_related("base_model").first()
        return UsageOut(usage).data if usage else None


class PlacementOut(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text="`ns/name@vN`, or the base model for its identity LoRA")

    class Meta:
        model = Placement
        fields = ["model", "engine_model", "state", "loaded_at"]

    def get_model(self, placement: Placement) -> str:
        if placement.deployment is None:
            return placement.replica.base_model.name
        return version_label(placement.deployment.version)


class ReplicaOut(serializers.ModelSerializer):
    base_model = serializers.CharField(source="base_model.name")
    placements = PlacementOut(many=True)

    class Meta:
        model = Replica
        fields = [
            "id",
            "url",
            "base_model",
            "kind",
            "max_loras",
            "max_cpu_loras",
            "managed",
            "base_only",
            "health",
            "last_error",
            "failures",
            "last_seen_at",
            "checked_at",
            "placements",
        ]
