"""manage.py ingest PATH: load a workbook, with per-sheet progress on a terminal and JSON log lines otherwise."""

from __future__ import annotations

import sys

from django.core.management import CommandError

from ingestion.choices import RunStatus, RunTrigger
from ingestion.services import AlreadyRunning, cache_warmups_useful, ingest_workbook
from prodplan.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = "Ingest a Folha_IA workbook (idempotent; one run at a time). Exit code 1 on failure, with the reason."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--allow-shrink", action="store_true", help="Allow deleting more than 5%% of a sheet's stored rows.")
        parser.add_argument("--force", action="store_true", help="Run the full pipeline even if the file is unchanged.")
        parser.add_argument("--no-profile", action="store_true", help="Skip the inspector's profile of the file.")

    def handle(self, *args, path: str, allow_shrink: bool, force: bool = False, no_profile: bool = False, **options):
        interactive = sys.stdout.isatty()

        def show(sheet: str, done: int, total: int, elapsed: float) -> None:
            rate = done / elapsed if elapsed else 0
            eta = (total - done) / rate if rate and total > done else 0
            self.stdout.write(f"\r  {sheet:<30} {done:>9,}/{total:<9,} rows  {rate:>9,.0f} rows/s  ETA {eta:5.1f}s", ending="")
            self.stdout.flush()

        try:
            run = ingest_workbook(
                path=path, trigger=RunTrigger.CLI, allow_shrink=allow_shrink, on_progress=show if interactive else None,
                force=force, profile=not no_profile,
                # This process exits right after: warming a process-local cache here would help nobody.
                warm_caches=cache_warmups_useful(process_exits=True),
            )
        except AlreadyRunning as exc:
            raise CommandError(str(exc)) from exc
        if interactive:
            self.stdout.write("")
        if run.status == RunStatus.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.error}")
        if run.status == RunStatus.NOOP:
            self.stdout.write(f"run {run.pk}: no change (same file as run {run.counts.get('noop_of_run')})")
            return
        self.stdout.write(f"run {run.pk} {run.status} in {run.duration_seconds:.1f}s, as of {run.as_of:%Y-%m-%d %H:%M}")
        for sheet in run.sheets.all():
            self.stdout.write(
                f"  {sheet.sheet:<30} read {sheet.rows_read:>8,}  loaded {sheet.rows_loaded:>8,}  rejected {sheet.rows_rejected:>5,}  "
                f"+{sheet.inserted:,} ~{sheet.updated:,} ={sheet.unchanged:,} -{sheet.deleted:,}"
            )
