from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from . import services
from .exceptions import HubError
from .models import (
    Adapter,
    AdapterVersion,
    Alias,
    ApiToken,
    AuditEvent,
    BaseModel,
    BaseModelAlias,
    BaseModelImport,
    Blob,
    Membership,
    Namespace,
    OutboxEvent,
    TaskTag,
    VersionFile,
)


class BaseModelAliasInline(admin.TabularInline):
    model = BaseModelAlias
    extra = 0


class BaseModelFromHubForm(forms.Form):
    from_hub = forms.RegexField(
        r"^[\w.-]+(/[\w.-]+)?$", max_length=200, label="Repo", help_text="ORG/NAME on HF_ENDPOINT"
    )
    revision = forms.CharField(max_length=100, help_text="the commit to download: pinned, not a branch")
    name = forms.CharField(max_length=100, help_text="the hub's name for it, e.g. llama-3.1-8b-instruct")
    alias = forms.CharField(max_length=300, required=False, help_text="another name it is known by (optional)")
    license = forms.CharField(max_length=100, required=False, help_text="default: the repo card's license")


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["name", "architecture", "revision", "hidden_size", "num_layers", "created_at"]
    readonly_fields = ["revision", "modules", "config"]
    inlines = [BaseModelAliasInline]

    def add_view(self, request, form_url="", extra_context=None):
        """Adding is downloading from a hub (``hub_base_model_add --from-hub``): the fields of a
        base model are read from its files, never typed in."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BaseModelFromHubForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                job, created = services.base_model_import_request(
                    user=request.user,
                    repo_id=data["from_hub"],
                    revision=data["revision"],
                    name=data["name"],
                    aliases=[data["alias"]] if data["alias"] else [],
                    license=data["license"],
                )
            except HubError as error:
                form.add_error(None, error.message)
            else:
                what = "Downloading" if created else "Already downloading"
                self.message_user(
                    request, f"{what} `{job.from_hub}` at {job.commit[:12]} as `{job.name}` on a worker: see below."
                )
                return redirect("admin:hub_basemodelimport_change", job.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Add a base model from a hub",
            "form": form,
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/hub/basemodel/add_from_hub.html", context)


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


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    """Events waiting for the broker show here with the broker's last refusal."""

    list_display = ["event", "task", "args", "created_at", "sent_at", "attempts", "last_error"]
    list_filter = ["event", ("sent_at", admin.EmptyFieldListFilter)]


@admin.register(BaseModelImport)
class BaseModelImportAdmin(admin.ModelAdmin):
    """Downloads staff asked for (the base model admin's "add", or REST): read-only, their
    outcome written by the worker."""

    list_display = ["id", "from_hub", "commit", "name", "status", "requested_by", "created_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in BaseModelImport._meta.fields]

    def has_add_permission(self, request):
        return False  # asked for from the base model admin, whose checks run first

    def has_change_permission(self, request, obj=None):
        return False
