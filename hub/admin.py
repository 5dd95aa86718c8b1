from django.contrib import admin

from .models import (
    Adapter,
    AdapterVersion,
    Alias,
    ApiToken,
    AuditEvent,
    BaseModel,
    BaseModelAlias,
    Blob,
    Membership,
    Namespace,
    TaskTag,
    VersionFile,
)


class BaseModelAliasInline(admin.TabularInline):
    model = BaseModelAlias
    extra = 0


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["name", "architecture", "revision", "hidden_size", "num_layers", "created_at"]
    readonly_fields = ["revision", "modules", "config"]
    inlines = [BaseModelAliasInline]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["namespace", "user", "role"]
    list_filter = ["role"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["key_hash", "prefix"]


@admin.register(TaskTag)
class TaskTagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Adapter)
class AdapterAdmin(admin.ModelAdmin):
    list_display = ["__str__", "private", "version_count", "updated_at"]
    list_filter = ["private"]
    search_fields = ["name", "namespace__name"]
    list_select_related = ["namespace"]
    raw_id_fields = ["latest_version", "created_by"]


class VersionFileInline(admin.TabularInline):
    model = VersionFile
    extra = 0
    can_delete = False
    readonly_fields = ["path", "blob"]


@admin.register(AdapterVersion)
class AdapterVersionAdmin(admin.ModelAdmin):
    """Versions are immutable: the admin shows them and edits only lifecycle fields."""

    list_display = ["__str__", "method", "rank", "status", "base_model", "created_at"]
    list_filter = ["method", "status", "base_model"]
    search_fields = ["adapter__name", "adapter__namespace__name", "content_hash"]
    list_select_related = ["adapter__namespace", "base_model"]
    inlines = [VersionFileInline]
    raw_id_fields = ["parent", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        editable = {"status", "status_reasons", "deprecated_at", "deprecation_reason"}
        return [f.name for f in self.model._meta.fields if f.name not in editable]


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin):
    list_display = ["sha256", "size", "created_at"]
    readonly_fields = ["sha256", "size"]


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["adapter", "name", "version", "updated_at"]
    raw_id_fields = ["version"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["kind", "actor", "adapter", "version", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["adapter", "version"]
