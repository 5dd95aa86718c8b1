"""The registry: base models, namespaces, adapters, immutable versions and their blobs.

One module per concern; every model is imported here, so ``from hub.models import X``
and Django's app registry see them all.
"""

from .accounts import ApiToken, Membership, Namespace, default_token_scopes
from .adapters import Adapter, AdapterVersion, Alias, Blob, TaskTag, VersionFile
from .basemodels import BaseModel, BaseModelAlias, BaseModelImport, BaseModelRevision, Geometry
from .common import TimeStamped
from .events import AuditEvent, OutboxEvent

__all__ = [
    "Adapter",
    "AdapterVersion",
    "Alias",
    "ApiToken",
    "AuditEvent",
    "BaseModel",
    "BaseModelAlias",
    "BaseModelImport",
    "BaseModelRevision",
    "Blob",
    "Geometry",
    "Membership",
    "Namespace",
    "OutboxEvent",
    "TaskTag",
    "TimeStamped",
    "VersionFile",
    "default_token_scopes",  # hub/migrations/0003_token_scopes.py names it as hub.models.default_token_scopes
]
