"""Register an engine started elsewhere (a GPU node, a Kubernetes pod) as a replica of a base."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hub.exceptions import HubError
from hub.models import BaseModel
from serving import placement
from serving.models import Replica


class Command(BaseCommand):
    help = (
        "Register the engine at --url as a replica of --base. The reconciler checks it, fills it with "
        "adapters and puts it in rotation once it answers; `GET /api/v1/serving/replicas/` shows it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base", required=True, help="the base model it serves (its hub name)")
        parser.add_argument("--url", required=True, help="its base URL, e.g. http://gpu-node-3:8000")
        parser.add_argument("--kind", default=Replica.Kind.VLLM, choices=[k.value for k in Replica.Kind])
        parser.add_argument("--max-loras", type=int, default=None, help="its --max-loras (default: the hub's)")
        parser.add_argument(
            "--max-cpu-loras", type=int, default=None, help="its --max-cpu-loras, identity LoRA included"
        )
        parser.add_argument("--base-only", action="store_true", help="it runs without LoRA: base requests only")
        parser.add_argument("--check", action="store_true", help="check it now and say how it is")

    def handle(self, *args, **options):
        from urllib.parse import urlsplit

        base = BaseModel.objects.filter(name=options["base"]).first()
        if base is None:
            names = ", ".join(BaseModel.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"base model `{options['base']}` is not registered (registered: {names})")
        parts = urlsplit(options["url"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CommandError(f"--url `{options['url']}` is not an http(s) URL, e.g. http://gpu-node-3:8000")
        for flag in ("max_loras", "max_cpu_loras"):
            if options[flag] is not None and options[flag] < 1:
                raise CommandError(f"--{flag.replace('_', '-')} must be 1 or more")
        try:
            replica = placement.replica_register(
                base=base,
                url=options["url"],
                kind=options["kind"],
                max_loras=options["max_loras"],
                max_cpu_loras=options["max_cpu_loras"],
                base_only=options["base_only"],
            )
        except HubError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"serving: {replica.url} is a replica of `{base.name}` (id {replica.pk})")
        if options["check"]:
            replica = placement.replica_reconcile(replica=replica)
            detail = f": {replica.last_error}" if replica.last_error else ""
            self.stdout.write(f"serving: {replica.url} is {replica.health}{detail}")
