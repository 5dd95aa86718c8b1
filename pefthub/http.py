"""HTTP to the hub: one ``requests`` session, retries, and errors as exceptions.

:class:`HttpClient` sends every request through :meth:`HttpClient._request`, which
retries what is safe to retry (a dropped connection; 429/502/503/504) with exponential
backoff, and turns each error answer into the matching :mod:`pefthub.errors` exception.

Uploads are retried too: the hub answers an upload whose files equal the adapter's
newest version with that version (200) instead of a new one, so sending the whole
upload again after a dropped connection never makes a duplicate, whether the first
try died before the hub had the body or after it stored the version.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from . import __version__
from .config import resolve_endpoint, resolve_token
from .errors import ConnectionFailed, PefthubError, error_for_response

log = logging.getLogger("pefthub")

# Answers that mean "the request did not get through to the application; try again".
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Makes a fresh request body (and its headers) for each try.
Body = Callable[[], tuple[Any, dict[str, str]]]


class HttpClient:
    """A ``requests`` session with one hub: its address, the token, and the retry rules
    (the arguments are described on :class:`pefthub.Client`)."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        timeout: float | tuple[float, float] = (10.0, 300.0),
        retries: int = 4,
        backoff: float = 0.5,
        progress: bool | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self.token = resolve_token(token)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.progress = progress
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"pefthub-client/{__version__} {requests.utils.default_user_agent()}"
        if self.token:
            self._session.headers["Authorization"] = f"Bearer {self.token}"

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def api_url(self, path: str) -> str:
        return f"{self.endpoint}/api/v1/{path}"

    def _progress(self, progress: bool | None) -> bool:
        """Whether to show a bar: the call's choice, else the client's, else a terminal."""
        chosen = self.progress if progress is None else progress
        return chosen if chosen is not None else sys.stderr.isatty()

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        body: Body | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send one request; retry it when safe; raise the matching error for 4xx/5xx.

        ``body`` makes a fresh request body (and its headers) for each try, since a
        streamed body is used up by the try that sent it.
        """
        url = path_or_url if "://" in path_or_url else self.api_url(path_or_url)
        tries = 1 + (self.retries if retry else 0)
        for attempt in range(1, tries + 1):
            data, headers = body() if body is not None else (None, {})
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    stream=stream,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if attempt < tries:
                    self._wait(attempt, tries, f"{method} {url}: {reason(exc)}")
                    continue
                raise ConnectionFailed(
                    f"could not reach the hub at {self.endpoint} ({reason(exc)})"
                    + (f" after {tries} tries" if tries > 1 else ""),
                ) from exc
            finally:
                close = getattr(data, "close", None)
                if close is not None:
                    close()
            if response.status_code in RETRY_STATUSES and attempt < tries:
                wait = retry_after(response)
                response.close()
                self._wait(attempt, tries, f"{method} {url}: HTTP {response.status_code}", wait)
                continue
            if response.status_code >= 400:
                raise self._error(response)
            return response
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, tries: int, why: str, seconds: float | None = None) -> None:
        if seconds is None:
            seconds = min(self.backoff * 2 ** (attempt - 1), 30.0) * (0.75 + random.random() / 2)
        log.warning("%s; retrying in %.1fs (try %d of %d)", why, seconds, attempt + 1, tries)
        time.sleep(seconds)

    def _error(self, response: requests.Response) -> PefthubError:
        try:
            text = response.text
        except requests.RequestException:
            text = ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        return error_for_response(response.status_code, payload, url=response.url, text=text)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PefthubError(
                f"{method} {response.url} answered {response.status_code} with something that is not "
                "JSON: is the endpoint a pefthub server?",
                status=response.status_code,
            ) from None


def reason(exc: BaseException) -> str:
    """The useful text of a connection error: requests nests the socket error a few
    levels deep, and its innermost text says what happened."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return f"{type(exc).__name__}: {text}" if inner is not exc else text


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(float(value), 60.0)
    except ValueError:
        return None
