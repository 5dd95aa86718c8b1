"""Add a base model (or a new revision of one) from a folder in Hugging Face format, or
from a Hugging Face hub at a pinned revision (``--from-hub ORG/NAME --revision SHA``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hub.exceptions import HubError


class Command(BaseCommand):
    help = (
        "Add a base model from a Hugging Face folder (config.json, safetensors weights, tokenizer), "
        "or download one from HF_ENDPOINT with --from-hub ORG/NAME --revision SHA. "
        "The same name with other weights adds a new revision; adapter versions keep the revision "
        "they were validated against."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, nargs="?", help="the Hugging Face folder (what save_pretrained wrote)")
        parser.add_argument(
            "--from-hub",
            metavar="ORG/NAME",
            default="",
            help="download this repo from HF_ENDPOINT instead of reading a folder; it becomes an alias",
        )
        parser.add_argument("--revision", default="", help="with --from-hub: the commit to download (required)")
        parser.add_argument("--name", required=True, help="the hub's name for it, e.g. llama-3.1-8b-instruct")
        parser.add_argument(
            "--alias",
            action="append",
            default=[],
            dest="aliases",
            help="another name it is known by, e.g. its HF id meta-llama/Llama-3.1-8B-Instruct (repeatable)",
        )
        parser.add_argument("--license", default="", help="its license, e.g. llama3.1 or apache-2.0")
        parser.add_argument("--display-name", default="", help="how the catalog shows it (default: --name)")

    def handle(self, *args: Any, folder: Path | None, name: str, aliases: list[str], **options: Any) -> None:
        from hub.services import base_model_add, base_model_add_from_hub

        repo_id, revision = options["from_hub"], options["revision"]
        if (folder is None) == (not repo_id):
            raise CommandError("pass either a FOLDER or --from-hub ORG/NAME --revision SHA (not both)")
        if revision and not repo_id:
            raise CommandError("--revision goes with --from-hub; a folder's revision is the hash of its files")
        common = {
            "name": name,
            "aliases": aliases,
            "license": options["license"],
            "display_name": options["display_name"],
            "data_dir": Path(settings.PEFTHUB_DATA_DIR),
        }
        try:
            if repo_id:
                base, new_revision = base_model_add_from_hub(repo_id=repo_id, revision=revision, **common)
            else:
                assert folder is not None
                base, new_revision = base_model_add(folder=folder, **common)
        except HubError as error:
            raise CommandError(error.message) from error
        what = "Added revision" if new_revision else "Already had revision"
        self.stdout.write(
            self.style.SUCCESS(
                f"{what} {base.revision[:12]} of base model `{base.name}` ({base.architecture}, "
                f"{len(base.modules)} adaptable modules) at {base.local_path}."
            )
        )
