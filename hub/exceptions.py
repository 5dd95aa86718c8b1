"""The hub's one domain exception type.

Every rejection the hub makes is a :class:`HubError` (or a subclass). A single DRF
exception handler (``hub.api_errors.exception_handler``) maps them to HTTP responses,
so services never think about HTTP and views never invent their own error shapes.
"""

from __future__ import annotations


class HubError(Exception):
    """A rejection with a message the user can act on."""

    status_code = 400
    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        file: str | None = None,
        field: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.file = file
        self.field = field
        # Response headers the refusal needs (``Content-Range`` on a 416, ...).
        self.headers = dict(headers or {})

    def as_dict(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.file is not None:
            body["file"] = self.file
        if self.field is not None:
            body["field"] = self.field
        return body


class UploadRejected(HubError):
    """An uploaded adapter failed validation; nothing of it was kept."""

    status_code = 422
    code = "upload_rejected"


class UploadTooLarge(UploadRejected):
    """An upload, one of its files or an archive's unpacked content is over a size limit.

    The rule: 413 whenever a size limit is exceeded, 422 (:class:`UploadRejected`) whenever
    the content itself is wrong.
    """

    status_code = 413
    code = "upload_too_large"


class NotFound(HubError):
    status_code = 404
    code = "not_found"


class PermissionDenied(HubError):
    status_code = 403
    code = "permission_denied"


class Conflict(HubError):
    status_code = 409
    code = "conflict"


class StaleParent(Conflict):
    """A commit's parent is no longer the newest version (the Hub answers 412)."""

    status_code = 412
    code = "stale_parent"
