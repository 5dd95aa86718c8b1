from django.contrib import admin

from .models import Deployment, ModelUsage


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["version", "live", "reason", "engine", "last_used_at", "updated_at"]
    list_filter = ["live", "reason", "engine"]
    raw_id_fields = ["version", "deployed_by"]


@admin.register(ModelUsage)
class ModelUsageAdmin(admin.ModelAdmin):
    list_display = ["model", "requests", "errors", "prompt_tokens", "completion_tokens", "last_request_at"]
    raw_id_fields = ["version"]
