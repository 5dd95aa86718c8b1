"""Write the lm-eval task folder the hub runs for a suite, for the ``lm_eval`` CLI:

python manage.py evaluator_suite_tasks evaluator/suites/acme-products --out /tmp/acme-tasks
lm_eval --include_path /tmp/acme-tasks --tasks acme_mc,acme_qa ...
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluator.suite_check import check_folder
from evaluator.suite_kinds import lmeval_files
from hub.exceptions import HubError


class Command(BaseCommand):
    help = "Write the lm-eval task YAMLs, scoring code and data the hub generates for a suite folder."

    def add_arguments(self, parser):
        parser.add_argument("folder", help="the suite folder (suite.json + JSONL)")
        parser.add_argument("--out", required=True, help="folder to write (created; must be empty if it exists)")

    def handle(self, *args, folder: str, out: str, **options):
        try:
            manifest = check_folder(Path(folder))
        except HubError as exc:
            raise CommandError(exc.message) from None
        if not manifest.kinds:
            raise CommandError(f"{folder} brings its own lm-eval YAMLs: use --include_path {folder}")
        target = Path(out)
        if target.exists() and any(target.iterdir()):
            raise CommandError(f"{target} is not empty")
        target.mkdir(parents=True, exist_ok=True)
        for name, content in lmeval_files(Path(folder), slug=manifest.slug, tasks=manifest.kinds).items():
            (target / name).write_bytes(content)
        self.stdout.write(f"{target}: tasks {','.join(manifest.tasks)} (lm_eval --include_path {target})")
