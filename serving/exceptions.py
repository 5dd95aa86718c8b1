"""Serving's rejections: :class:`hub.exceptions.HubError` subclasses, so the REST API's one
exception handler maps them; the /v1 gateway renders them in the OpenAI error shape."""

from __future__ import annotations

from hub.exceptions import HubError


class ServingError(HubError):
    status_code = 400
    code = "serving_error"


class ModelNotFound(ServingError):
    status_code = 404
    code = "model_not_found"


class EngineDown(ServingError):
    status_code = 503
    code = "engine_unavailable"
