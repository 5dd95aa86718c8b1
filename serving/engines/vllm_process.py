"""vLLM's server as a subprocess: the command line, its environment, start, stop and log.

Only a managed engine (``VLLMEngine(manage=True)``, the supervisor's handle) has one; the
gateway's engines talk HTTP to a server some other process runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from .base import EngineSpec, EngineUnavailable

log = logging.getLogger(__name__)


class VLLMProcess:
    """One ``python -m vllm.entrypoints.openai.api_server`` with multi-LoRA, on ``url``'s port."""

    def __init__(
        self,
        spec: EngineSpec,
        *,
        url: str,
        max_loras: int,
        kv_cache_gib: int,
        dtype: str,
        extra_args: list[str],
        state_dir: Path,
        bind_host: str | None,
        api_key: str = "",
        lora: bool = True,
    ) -> None:
        self.spec = spec
        self.lora = lora
        self.url = url
        self.max_loras = max_loras
        self.kv_cache_gib = kv_cache_gib
        self.dtype = dtype
        self.extra_args = list(extra_args)
        self.state_dir = Path(state_dir)
        self.bind_host = bind_host  # default: the URL's host (loopback)
        self.api_key = api_key
        self.process: subprocess.Popen | None = None
        self.log_path = self.state_dir / "vllm.log"

    def host(self) -> str:
        from urllib.parse import urlsplit

        return self.bind_host or urlsplit(self.url).hostname or "127.0.0.1"

    def command(self) -> list[str]:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        args = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.spec.base_path),
            "--served-model-name",
            self.spec.base_name,
            "--host",
            self.host(),
            "--port",
            str(parts.port or 8001),
            "--dtype",
            self.dtype,
            "--disable-uvicorn-access-log",
        ]
        if self.lora:
            args += [
                "--enable-lora",
                "--max-loras",
                str(self.max_loras),
                "--max-cpu-loras",
                str(self.spec.max_loaded + 1),  # + the identity LoRA the base is served through
                "--max-lora-rank",
                str(self.spec.max_rank or 16),
            ]
        return args + self.extra_args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
            }
        )
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("VLLM_API_KEY", None)
        if self.api_key:
            # vLLM's --api-key, from the environment so that `ps` does not show it
            env["VLLM_API_KEY"] = self.api_key
        return env

    def spawn(self) -> None:
        """Start the server unless it runs; returns at once (the caller waits for /health).
        What is left of a server that died (its engine core and workers, which may outlive
        the API server they belong to, holding gigabytes) is killed first."""
        if self.running():
            return
        if self.process is not None:
            self._reap(self.process.pid)
        if not self.api_key and not _loopback(self.host()):
            raise EngineUnavailable(
                f"vLLM would listen on {self.host()} with no key, and anyone who reaches it could load "
                "any path as a LoRA: set PEFTHUB_VLLM_API_KEY (the same for web, worker and engine)"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        log.info("starting vLLM: %s", " ".join(self.command()))
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers die with it (killpg)
        )
        handle.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        """It was started and is gone (crashed, or killed)."""
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reap(self.process.pid)
        self.process = None

    @staticmethod
    def _reap(group: int, timeout: float = 30) -> None:
        """Kill what is left of the server's process group (its session: ``start_new_session``)
        and wait until it is gone, so that a new server does not start beside it."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                return  # no process of the group is left
            except PermissionError:
                log.warning("cannot kill what is left of vLLM's process group %s", group)
                return
            if time.monotonic() > deadline:
                log.warning("processes of vLLM's group %s outlived SIGKILL for %.0f s", group, timeout)
                return
            time.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
