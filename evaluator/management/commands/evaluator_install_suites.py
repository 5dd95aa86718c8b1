"""Register the suites this project ships (general first: the domain suite measures
forgetting on it). A second run registers nothing new."""

from pathlib import Path

from django.core.management.base import BaseCommand

from evaluator.services import suite_register
from evaluator.suites_registry import read_manifest, shipped_suite_dirs


class Command(BaseCommand):
    help = "Register the shipped evaluation suites, or the suite folders given."

    def add_arguments(self, parser):
        parser.add_argument("folders", nargs="*", help="suite folders (default: the shipped ones)")
        parser.add_argument("--inactive", action="store_true", help="do not score new versions on them")

    def handle(self, *args, folders, inactive: bool, **options):
        dirs = [Path(f) for f in folders] or shipped_suite_dirs()
        # Suites others point at (general_suite) go first.
        dirs.sort(key=lambda d: read_manifest(d).general_suite is not None)
        for folder in dirs:
            suite = suite_register(folder=folder, active=not inactive)
            self.stdout.write(f"{suite} ({suite.role}, tasks: {', '.join(suite.tasks)})")
