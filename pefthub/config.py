"""Where the hub is and who we are: argument, then environment, then the token file."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
ENDPOINT_ENV = "PEFTHUB_ENDPOINT"
TOKEN_ENV = "PEFTHUB_TOKEN"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/pefthub``, by default ``~/.config/pefthub``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pefthub"


def token_path() -> Path:
    return config_dir() / "token"


def resolve_endpoint(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


def resolve_token(token: str | None = None) -> str | None:
    """The token to send: the argument, ``PEFTHUB_TOKEN``, or the one ``pefthub login`` saved."""
    if token:
        return token
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    try:
        saved = token_path().read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return saved or None


def save_token(token: str) -> Path:
    """Write the token where :func:`resolve_token` finds it, readable by the user only."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token.strip() + "\n")
    os.chmod(path, 0o600)
    return path
