"""Remove stored file content that no adapter version uses any more."""

from django.core.management.base import BaseCommand

from hub.storage.gc import blobs_collect_garbage, upload_temp_collect_garbage


class Command(BaseCommand):
    help = "Delete unreferenced blobs older than --grace seconds (default one hour)."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=int, default=3600, help="seconds a blob must be old")
        parser.add_argument("--dry-run", action="store_true", help="only list what would go")

    def handle(self, *args, grace: int, dry_run: bool, **options):
        removed = blobs_collect_garbage(grace_seconds=grace, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(f"{verb} {len(removed)} blob(s)")
        for sha in removed:
            self.stdout.write(f"  {sha}")
        from hub.hf.lfs import staged_collect_garbage

        staged = staged_collect_garbage(grace_seconds=grace, dry_run=dry_run)
        self.stdout.write(f"{verb} {len(staged)} staged LFS object(s) no commit took")
        spooled = upload_temp_collect_garbage(grace_seconds=grace, dry_run=dry_run)
        self.stdout.write(f"{verb} {len(spooled)} upload temp file(s) a killed web process left")
