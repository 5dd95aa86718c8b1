from django.contrib import admin

from .models import Deployment, ModelUsage, Placement, Replica


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["version", "live", "reason", "engine", "last_used_at", "updated_at"]
    list_filter = ["live", "reason", "engine"]
    raw_id_fields = ["version", "deployed_by"]


@admin.register(ModelUsage)
class ModelUsageAdmin(admin.ModelAdmin):
    list_display = ["model", "requests", "errors", "prompt_tokens", "completion_tokens", "last_request_at"]
    raw_id_fields = ["version"]


class PlacementInline(admin.TabularInline):
    model = Placement
    fields = ["engine_model", "deployment", "state", "loaded_at"]
    readonly_fields = ["engine_model", "deployment", "state", "loaded_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Replica)
class ReplicaAdmin(admin.ModelAdmin):
    """Each replica with its health, why it is unhealthy, and what it holds."""

    list_display = [
        "url",
        "base_model",
        "kind",
        "health",
        "last_error",
        "holds",
        "last_seen_at",
        "managed",
        "base_only",
    ]
    list_filter = ["health", "kind", "managed", "base_only", "base_model"]
    readonly_fields = ["health", "last_error", "failures", "last_seen_at", "checked_at", "lease_until"]
    inlines = [PlacementInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("base_model").prefetch_related("placements")

    @admin.display(description="holds")
    def holds(self, replica: Replica) -> str:
        loaded = Placement.State.LOADED
        names = [f"{p.engine_model}{'' if p.state == loaded else ' (to load)'}" for p in replica.placements.all()]
        return ", ".join(names) or "-"
