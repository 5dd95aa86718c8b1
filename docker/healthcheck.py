#!/usr/bin/env python
"""Container health check of the pefthub image (the Dockerfile's HEALTHCHECK).

The entrypoint notes the role it started. ``web``: GET /healthz (which also queries the
database) must answer 200. ``worker``: this container's Celery node must answer a ping
through the broker. Anything else (a one-off ``manage.py`` command) has nothing to check.
Exit 0 is healthy, 1 unhealthy, as Docker expects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROLE_FILE = Path(os.environ.get("PEFTHUB_ROLE_FILE", "/tmp/pefthub-role"))
TIMEOUT_S = 10


def _host_header() -> str:
    # Django answers 400 to a Host outside ALLOWED_HOSTS, so ask as one of the allowed hosts.
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = entry.strip().lstrip(".")  # ".example.com" allows example.com itself too
        if host and "*" not in host:
            return host
    return "localhost"


def check_web() -> str | None:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    request = urllib.request.Request(url, headers={"Host": _host_header()})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if response.status != 200:
                return f"{url} answered {response.status}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {error}"
    return None


def check_worker() -> str | None:
    node = f"celery@{socket.gethostname()}"
    command = ["celery", "-A", "config", "inspect", "ping", "--destination", node]
    command += ["--timeout", str(TIMEOUT_S)]
    try:
        result = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S + 8,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{node} did not answer a ping in {TIMEOUT_S + 8} s"
    if result.returncode != 0:
        return f"{node} did not answer a ping: {(result.stdout + result.stderr).strip()[-500:]}"
    return None


def main() -> int:
    try:
        role = ROLE_FILE.read_text().strip()
    except FileNotFoundError:
        return 0
    checks = {"web": check_web, "worker": check_worker}
    if role not in checks:
        return 0
    problem = checks[role]()
    if problem:
        print(f"unhealthy {role}: {problem}")
        return 1
    print(f"healthy {role}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
