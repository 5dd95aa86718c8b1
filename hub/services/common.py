"""Rules every service shares: the names namespaces, adapters and aliases may take."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from ..exceptions import HubError

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
RESERVED_NAMESPACES = {"api", "admin", "static", "v1", "auth", "accounts", "new", "settings"}


def _check_name(kind: str, name: str) -> None:
    if not NAME_RE.match(name) or name.endswith(".") or ".." in name:
        raise HubError(
            f"{kind} name `{name}` is not valid: use 1-96 letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit",
            field="name",
        )
