from django.urls import path, re_path

from . import apis

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
ADAPTER = rf"adapters/(?P<namespace>{NAME})/(?P<name>{NAME})"

app_name = "hub"
urlpatterns = [
    path("base-models/", apis.BaseModelListApi.as_view(), name="base-model-list"),
    path("base-model-imports/", apis.BaseModelImportListApi.as_view(), name="base-model-import-list"),
    path(
        "base-model-imports/<int:import_id>/",
        apis.BaseModelImportDetailApi.as_view(),
        name="base-model-import-detail",
    ),
    re_path(r"^base-models/(?P<name>.+)/$", apis.BaseModelDetailApi.as_view(), name="base-model-detail"),
    path("namespaces/", apis.NamespaceListApi.as_view(), name="namespace-list"),
    re_path(
        rf"^namespaces/(?P<namespace>{NAME})/members/$",
        apis.NamespaceMemberApi.as_view(),
        name="namespace-members",
    ),
    path("adapters/", apis.AdapterListApi.as_view(), name="adapter-list"),
    re_path(rf"^{ADAPTER}/$", apis.AdapterDetailApi.as_view(), name="adapter-detail"),
    re_path(rf"^{ADAPTER}/versions/$", apis.VersionListApi.as_view(), name="version-list"),
    re_path(
        rf"^{ADAPTER}/versions/(?P<ref>[A-Za-z0-9._-]+)/$",
        apis.VersionDetailApi.as_view(),
        name="version-detail",
    ),
    re_path(
        rf"^{ADAPTER}/versions/(?P<ref>[A-Za-z0-9._-]+)/deprecate/$",
        apis.VersionDeprecateApi.as_view(),
        name="version-deprecate",
    ),
    re_path(
        rf"^{ADAPTER}/versions/(?P<ref>[A-Za-z0-9._-]+)/archive/$",
        apis.VersionArchiveApi.as_view(),
        name="version-archive",
    ),
    re_path(
        rf"^{ADAPTER}/versions/(?P<ref>[A-Za-z0-9._-]+)/files/(?P<path>[^/]+)$",
        apis.VersionFileApi.as_view(),
        name="version-file",
    ),
    re_path(rf"^{ADAPTER}/aliases/$", apis.AliasListApi.as_view(), name="alias-list"),
    re_path(
        rf"^{ADAPTER}/aliases/(?P<alias>[A-Za-z0-9._-]+)/$",
        apis.AliasDetailApi.as_view(),
        name="alias-detail",
    ),
    path("whoami/", apis.WhoamiApi.as_view(), name="whoami"),
    path("tokens/", apis.TokenListApi.as_view(), name="token-list"),
    path("tokens/<int:token_id>/", apis.TokenDetailApi.as_view(), name="token-detail"),
]
