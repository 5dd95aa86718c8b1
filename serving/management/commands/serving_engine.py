"""Run a base model's vLLM replicas for the hub's gateway: start them, fill them, keep them up."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hub.models import BaseModel
from serving import placement
from serving.engines.base import EngineSpec
from serving.engines.registry import ENGINES, register_instance
from serving.engines.vllm_engine import VLLMEngine
from serving.supervisor import FleetSupervisor


def replica_urls(count: int) -> list[str]:
    """``PEFTHUB_VLLM_URL`` and the next ports on the same host: one URL per local replica."""
    parts = urlsplit(settings.PEFTHUB_VLLM_URL.rstrip("/"))
    port = parts.port or 8001
    host = parts.hostname or "127.0.0.1"
    return [urlunsplit((parts.scheme, f"{host}:{port + i}", "", "", "")) for i in range(count)]


def _engine(base: BaseModel, url: str, index: int) -> VLLMEngine:
    """A managed engine for replica ``index`` of ``base``, on the base's current folder."""
    if index == 0 and base.name == settings.PEFTHUB_VLLM_BASE_MODEL:
        # this process's registry engine for the base (the one its own code paths use), made
        # afresh so that a restart on a new revision gets the new folder
        engine = ENGINES["vllm"](base_name=base.name, base_path=Path(base.local_path), manage=True)
        assert isinstance(engine, VLLMEngine)
        register_instance("vllm", base.name, engine)
        return engine
    spec = EngineSpec(
        base_name=base.name,
        base_path=Path(base.local_path),
        max_loaded=settings.PEFTHUB_VLLM_MAX_CPU_LORAS,
        max_rank=settings.PEFTHUB_VLLM_MAX_LORA_RANK,
    )
    return VLLMEngine(
        spec,
        url=url,
        manage=True,
        max_loras=settings.PEFTHUB_VLLM_MAX_LORAS,
        kv_cache_gib=settings.PEFTHUB_VLLM_KVCACHE_GIB,
        dtype=settings.PEFTHUB_VLLM_DTYPE,
        extra_args=settings.PEFTHUB_VLLM_EXTRA_ARGS,
        state_dir=Path(settings.PEFTHUB_SERVING_DIR) / "vllm" / f"replica-{urlsplit(url).port}",
        startup_timeout=settings.PEFTHUB_VLLM_STARTUP_TIMEOUT,
        bind_host=settings.PEFTHUB_VLLM_HOST or None,
        api_key=settings.PEFTHUB_VLLM_API_KEY,
        default_max_tokens=settings.PEFTHUB_SERVING_MAX_TOKENS,
        health_timeout=settings.PEFTHUB_SERVING_HEALTH_TIMEOUT,
    )


class Command(BaseCommand):
    help = (
        "Start N local vLLM replicas of a base model (PEFTHUB_VLLM_URL's port and the next ones), "
        "register them, fill them with their adapters, restart them when they crash, and reconcile "
        "every replica of the base (registered ones too)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base", default=None, help="the base model (default: PEFTHUB_VLLM_BASE_MODEL)")
        parser.add_argument("--replicas", type=int, default=1, help="how many local vLLM processes (default: 1)")
        parser.add_argument("--check", action="store_true", help="start, load, report, then stop (a smoke test)")
        parser.add_argument(
            "--auto", action="store_true", help="do nothing when PEFTHUB_VLLM_AUTOSTART is false (`make run`)"
        )

    def handle(self, *args, check: bool = False, auto: bool = False, base: str | None = None, **options):
        if auto and not settings.PEFTHUB_VLLM_AUTOSTART:
            self.stdout.write("serving: PEFTHUB_VLLM_AUTOSTART is false; not starting vLLM (LoRA requests answer 503)")
            return
        count = options["replicas"]
        if count < 1:
            raise CommandError("--replicas must be 1 or more")
        name = base or settings.PEFTHUB_VLLM_BASE_MODEL
        base_model = BaseModel.objects.filter(name=name).first()
        if base_model is None:
            self.stderr.write(
                f"serving: base model `{name}` is not registered (run `python manage.py hub_install_base_model`); "
                "the vLLM engine is not started. The hub keeps running; LoRA requests answer 503."
            )
            sys.exit(1)
        try:
            import vllm  # noqa: F401
        except Exception as exc:
            self.stderr.write(
                f"serving: vLLM cannot be imported ({exc.__class__.__name__}: {exc}); the engine is not started. "
                "Install it with `make install` (requirements/serving.txt + scripts/install-vllm). "
                "The hub keeps running; LoRA requests answer 503 engine_unavailable."
            )
            sys.exit(1)
        engines = {}
        for index, url in enumerate(replica_urls(count)):
            engine = _engine(base_model, url, index)
            replica = placement.replica_register(
                base=base_model,
                url=engine.url,
                max_loras=settings.PEFTHUB_VLLM_MAX_LORAS,
                max_cpu_loras=settings.PEFTHUB_VLLM_MAX_CPU_LORAS + 1,  # + the identity LoRA
                managed=True,
            )
            engines[replica.pk] = engine
            self.stdout.write(f"serving: starting vLLM for `{base_model.name}` on {engine.url} ({engine.log_path})")
        supervisor = FleetSupervisor(base_model, engines, make_engine=_engine)
        failed = supervisor.start_all()
        for pk, why in failed.items():
            self.stderr.write(f"serving: the replica on {engines[pk].url} did not start: {why}")
        if len(failed) == len(engines):
            supervisor.stop(engines=True)
            self.stderr.write("serving: no vLLM replica started. The hub keeps running; LoRA requests answer 503.")
            sys.exit(1)
        up = len(engines) - len(failed)
        self.stdout.write(f"serving: {up} vLLM replica(s) of `{base_model.name}` up and filled")
        if check:
            supervisor.stop(engines=True)
            return

        def _stop(signum, frame):
            supervisor.stop(engines=True)
            sys.exit(0)

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        supervisor.run()
