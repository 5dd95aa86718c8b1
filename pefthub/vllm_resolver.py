"""pefthub as a vLLM LoRA resolver: a vLLM server serves ``ns/name@ref`` straight from the hub.

A client asks vLLM for ``model="alice/support-bot@v3"`` (or ``@production``, or no ref for
``latest``); vLLM has no such LoRA yet, asks its resolvers, and this one fetches the version
from the hub (:class:`pefthub.adapter_cache.AdapterCache`: every file checked against its
sha256, cached by content hash) and hands vLLM the folder. The hub is not in the request
path: it is asked once per adapter name and node, and the cache outlives restarts.

Enable it on the vLLM node (the package registers the entry point ``pefthub`` in vLLM's
``vllm.general_plugins`` group; like vLLM's own Hugging Face resolver it downloads from a
remote, so it stays off unless ``VLLM_PLUGINS`` names it)::

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=true VLLM_PLUGINS=pefthub \\
    PEFTHUB_ENDPOINT=https://hub.example PEFTHUB_TOKEN=... \\
    vllm serve BASE --enable-lora --max-lora-rank 16

``PEFTHUB_RESOLVER_CACHE`` is the cache folder (default ``~/.cache/pefthub/adapters``);
``PEFTHUB_BASE_MODEL``, when set, is the hub's name of the base model this server runs, and
adapters trained on another base are refused.

A refused name (unknown, private without a member's token, deprecated, not a LoRA, another
base, a file that fails its check) makes the resolver answer None, so vLLM answers 404; the
reason is logged as a warning. vLLM keeps a resolved name loaded: an alias is resolved when
first asked for, and a node follows it to a new version after ``/v1/unload_lora_adapter``
or a restart. Pin versions (``@v3``) where every node must serve the same weights.

``vllm`` is imported only by :func:`register` and :meth:`PefthubLoRAResolver.resolve_lora`,
which vLLM alone calls, so ``import pefthub`` stays light.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, cast

from .adapter_cache import CACHE_ENV, AdapterCache, CachedAdapter
from .config import ENDPOINT_ENV, TOKEN_ENV
from .errors import PefthubError
from .repo import RepoId, parse_repo

if TYPE_CHECKING:
    from vllm.lora.request import LoRARequest

log = logging.getLogger("pefthub.vllm_resolver")

PLUGIN_NAME = "pefthub"
RESOLVER_NAME = "pefthub"
BASE_MODEL_ENV = "PEFTHUB_BASE_MODEL"


class PefthubLoRAResolver:
    """vLLM's ``LoRAResolver`` for adapter names of the hub (registered as a virtual
    subclass by :func:`register`, so that this module needs no vLLM to import)."""

    def __init__(self, cache: AdapterCache, *, base_model: str | None = None) -> None:
        self.cache = cache
        self.base_model = base_model or None
        self._logging_set = False

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        """The ``LoRARequest`` for ``lora_name`` (``ns/name[@ref]``), or None when refused."""
        if not self._logging_set:
            self._logging_set = _log_like_vllm()
        try:
            rid = parse_repo(lora_name)
        except ValueError:
            return None  # not a hub name: another resolver's, or nobody's
        try:
            cached = await asyncio.to_thread(self.fetch, rid)
        except (PefthubError, OSError) as exc:
            log.warning("pefthub resolver: not serving `%s`: %s", lora_name, exc)
            return None
        from vllm.lora.request import LoRARequest

        log.info("pefthub resolver: `%s` is v%d, %s", lora_name, cached.version, cached.path)
        # vLLM replaces the id with its own unique one before loading.
        return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=str(cached.path))

    def fetch(self, rid: RepoId) -> CachedAdapter:
        """The verified folder of ``rid``, after the checks that need no download."""
        info = self.cache.version_info(rid)
        check_servable(rid, info, base_model=self.base_model)
        return self.cache.fetch_version(rid, info)


def check_servable(rid: RepoId, info: dict[str, Any], *, base_model: str | None) -> None:
    """Raise unless vLLM may serve this version: a LoRA, not deprecated, on ``base_model``."""
    number = info.get("version")
    if info.get("deprecated"):
        why = info.get("deprecation_reason") or "no reason given"
        raise PefthubError(f"{rid} is v{number}, which is deprecated ({why}); ask for a current version")
    card = info.get("card") or {}
    peft_type = card.get("peft_type")
    if peft_type != "LORA":
        raise PefthubError(f"{rid} is v{number}, a {peft_type} adapter; vLLM serves LoRA adapters only")
    trained_on = (card.get("lineage") or {}).get("base_model")
    if base_model and trained_on != base_model:
        raise PefthubError(
            f"{rid} is v{number}, trained on base model `{trained_on}`, but this server runs `{base_model}` "
            f"({BASE_MODEL_ENV}); ask a server of that base"
        )


def from_env() -> PefthubLoRAResolver:
    """The resolver the environment describes (see the module docstring)."""
    endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
    if not endpoint:
        raise PefthubError(
            f"the pefthub LoRA resolver is enabled (VLLM_PLUGINS names `{PLUGIN_NAME}`) but {ENDPOINT_ENV} "
            "is not set: set it to the hub's address (and PEFTHUB_TOKEN for private adapters)"
        )
    cache = AdapterCache(endpoint=endpoint, token=os.environ.get(TOKEN_ENV, "").strip() or None)
    try:
        cache.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PefthubError(
            f"the pefthub LoRA resolver cannot create its cache folder {cache.root} ({exc}): "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc
    return PefthubLoRAResolver(cache, base_model=os.environ.get(BASE_MODEL_ENV, "").strip() or None)


def register() -> None:
    """vLLM's entry point (``vllm.general_plugins``): register the resolver if enabled.

    vLLM calls it in each of its processes; only the API server ever asks resolvers, and
    registering needs no network, so the others pay nothing for it.
    """
    import vllm.envs as envs
    from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

    plugins = envs.VLLM_PLUGINS
    if plugins is None or PLUGIN_NAME not in plugins:
        if os.environ.get(ENDPOINT_ENV):
            log.warning(
                "%s is set but VLLM_PLUGINS does not name `%s`: the pefthub LoRA resolver is off "
                "(it downloads adapters from a remote hub, so it must be enabled by name)",
                ENDPOINT_ENV,
                PLUGIN_NAME,
            )
        return
    resolver = from_env()
    if not envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING:
        log.warning(
            "the pefthub LoRA resolver is registered, but vLLM asks resolvers only with "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=true (and --enable-lora)"
        )
    LoRAResolver.register(PefthubLoRAResolver)  # a virtual subclass, which mypy cannot see
    LoRAResolverRegistry.register_resolver(RESOLVER_NAME, cast(LoRAResolver, resolver))


def _log_like_vllm() -> bool:
    """Send pefthub's log lines where vLLM sends its own, in its format and at its level,
    unless the operator configured the ``pefthub`` logger; False while vLLM has not set up
    its logging yet (it does after loading plugins).

    Without this a refusal would go unseen: with runtime LoRA updating on, vLLM's server
    imports a package that sets the root logger to ERROR.
    """
    ours, theirs = logging.getLogger("pefthub"), logging.getLogger("vllm")
    if ours.handlers:
        return True
    if not theirs.handlers:
        return False
    for handler in theirs.handlers:
        ours.addHandler(handler)
    ours.setLevel(theirs.level)
    ours.propagate = False
    return True
