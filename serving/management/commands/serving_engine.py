"""Run the vLLM engine for the hub's gateway: start it, reload live adapters, keep it up."""

from __future__ import annotations

import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from hub.models import BaseModel
from serving.engines import EngineError, get_engine
from serving.supervisor import EngineSupervisor


class Command(BaseCommand):
    help = "Start the vLLM engine (loopback), load the live adapters, restart it when it crashes."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="start, load, report, then stop (a smoke test)")
        parser.add_argument(
            "--auto", action="store_true", help="do nothing when PEFTHUB_VLLM_AUTOSTART is false (`make run`)"
        )

    def handle(self, *args, check: bool = False, auto: bool = False, **options):
        if auto and not settings.PEFTHUB_VLLM_AUTOSTART:
            self.stdout.write("serving: PEFTHUB_VLLM_AUTOSTART is false; not starting vLLM (LoRA requests answer 503)")
            return
        name = settings.PEFTHUB_VLLM_BASE_MODEL
        base = BaseModel.objects.filter(name=name).first()
        if base is None:
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
        engine = get_engine("vllm", base_name=base.name, base_path=base.local_path, manage=True)
        supervisor = EngineSupervisor(engine)
        self.stdout.write(f"serving: starting vLLM for `{base.name}` on {engine.url} (log: {engine.log_path})")
        try:
            loaded = supervisor.start_engine()
        except EngineError as exc:
            engine.stop()
            self.stderr.write(
                f"serving: vLLM did not start: {exc.message}\nThe hub keeps running; LoRA requests answer 503."
            )
            sys.exit(1)
        self.stdout.write(f"serving: vLLM is up on {engine.url}; {len(loaded)} live adapter(s) loaded")
        if check:
            engine.stop()
            return

        def _stop(signum, frame):
            supervisor.stop()
            engine.stop()
            sys.exit(0)

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        supervisor.run()
