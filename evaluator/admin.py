from django.contrib import admin

from .models import ArmRun, EvaluationJob, Suite


@admin.register(Suite)
class SuiteAdmin(admin.ModelAdmin):
    list_display = ["slug", "version", "role", "retriever", "top_k", "active", "registered_by", "created_at"]
    list_filter = ["role", "active"]
    readonly_fields = ["content_hash", "path"]


@admin.register(ArmRun)
class ArmRunAdmin(admin.ModelAdmin):
    list_display = ["suite", "arm", "adapter_hash", "backend", "duration_seconds", "created_at"]
    list_filter = ["arm", "backend"]
    readonly_fields = [f.name for f in ArmRun._meta.fields]


@admin.register(EvaluationJob)
class EvaluationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "suite", "status", "progress", "decision", "solo", "fresh", "created_at"]
    list_filter = ["status", "decision", "solo", "fresh", "suite"]
    raw_id_fields = ["version", "batch_leader", "rerun_of"]
    filter_horizontal = ["runs"]
