"""manage.py ingest_run RUN_ID: execute a recorded pending run (the child process of the Celery ingestion task)."""

from __future__ import annotations

from django.core.management import CommandError

from ingestion.choices import RunStatus
from ingestion.services import AlreadyRunning, ingest_run
from prodplan.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = "Execute a pending ingestion run by id (used by the worker, under a memory limit). Exit 1 when it fails."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)

    def handle(self, *args, run_id: int, **options):
        try:
            run = ingest_run(run_id=run_id)
        except AlreadyRunning as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"run {run.pk}: {run.status}")
        if run.status == RunStatus.FAILED:
            raise CommandError(run.error)
