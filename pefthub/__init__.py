"""pefthub: push PEFT adapters to a pefthub hub, pull them back, follow their evaluation.

    import pefthub
    pefthub.push("./out", "acme/support-bot")            # token from PEFTHUB_TOKEN or `pefthub login`
    trainer.add_callback(pefthub.PefthubCallback("acme/support-bot", push_on_save=True))

``import pefthub`` stays light: :class:`PefthubCallback` imports transformers only when
it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .client import Client, pull, push
from .errors import (
    AuthenticationError,
    ConflictError,
    ConnectionFailed,
    EvaluationTimeout,
    InvalidRequestError,
    NotFoundError,
    PefthubError,
    PermissionDeniedError,
    ServerError,
    UploadRejectedError,
)
from .repo import RepoId, parse_repo
from .results import EvaluationStatus, PullResult, PushResult

if TYPE_CHECKING:
    from .callback import PefthubCallback

__all__ = [
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "EvaluationStatus",
    "EvaluationTimeout",
    "InvalidRequestError",
    "NotFoundError",
    "PefthubCallback",
    "PefthubError",
    "PermissionDeniedError",
    "PullResult",
    "PushResult",
    "RepoId",
    "ServerError",
    "UploadRejectedError",
    "parse_repo",
    "pull",
    "push",
]


def __getattr__(name: str) -> Any:
    if name == "PefthubCallback":
        from .callback import PefthubCallback

        return PefthubCallback
    raise AttributeError(f"module 'pefthub' has no attribute {name!r}")
