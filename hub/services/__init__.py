"""Writes. Each service is one atomic state change with its side effects (audit row,
event in the outbox), and raises :class:`hub.exceptions.HubError` to refuse.

Callers use ``from hub import services`` and ``services.<entity>_<action>``; the modules
split them by entity: ``basemodels``, ``accounts`` (namespaces, memberships, tokens) and
``adapters`` (adapters, versions, aliases, lifecycle).
"""

from ..cards import CardInput
from .accounts import api_token_create, api_token_revoke, membership_set, namespace_create, token_hash
from .adapters import (
    ANY_PARENT,
    DOWNLOAD_FILES,
    adapter_create,
    adapter_delete,
    adapter_update,
    adapter_version_create,
    adapter_version_deprecate,
    adapter_version_set_status,
    alias_delete,
    alias_set,
    version_download_count,
)
from .base_imports import base_model_import_request, base_model_import_run, base_model_imports_expire
from .basemodels import base_model_add, base_model_add_from_hub, base_model_register, base_revision_files
from .common import ALIAS_RE, NAME_RE, RESERVED_NAMESPACES

__all__ = [
    "ALIAS_RE",
    "ANY_PARENT",
    "DOWNLOAD_FILES",
    "NAME_RE",
    "RESERVED_NAMESPACES",
    "CardInput",
    "adapter_create",
    "adapter_delete",
    "adapter_update",
    "adapter_version_create",
    "adapter_version_deprecate",
    "adapter_version_set_status",
    "alias_delete",
    "alias_set",
    "api_token_create",
    "api_token_revoke",
    "base_model_add",
    "base_model_add_from_hub",
    "base_model_import_request",
    "base_model_import_run",
    "base_model_imports_expire",
    "base_model_register",
    "base_revision_files",
    "membership_set",
    "namespace_create",
    "token_hash",
    "version_download_count",
]
