"""Celery tasks of ingestion: run a recorded ingestion, and watch the inbox workbook (beat)."""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings

from ingestion.choices import RunTrigger
from ingestion.reader import file_sha256
from ingestion.services import AlreadyRunning, ingest_run, ingest_workbook, ingestion_run_attach_profile
from prodplan.task_guard import single_instance

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def ingest_run_task(run_id: int) -> dict:
    """Execute a pending run; a second copy finds it done (or the lock held) and does nothing."""
    try:
        run = ingest_run(run_id=run_id)
    except AlreadyRunning as exc:
        return {"run_id": run_id, "status": "skipped", "detail": str(exc)}
    return {"run_id": run.pk, "status": run.status}


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
@single_instance
def ingest_inbox_task() -> dict:
    """Ingest the newest workbook in the inbox when its content differs from the last successful run."""
    from ingestion.selectors import last_successful_run

    inbox = Path(settings.INBOX_DIR)
    workbooks = sorted(inbox.glob("*.xlsx"), key=lambda p: p.stat().st_mtime) if inbox.is_dir() else []
    if not workbooks:
        return {"status": "empty inbox"}
    newest = workbooks[-1]
    last = last_successful_run()
    if last is not None and last.file_sha256 == file_sha256(newest):
        return {"status": "unchanged", "file": newest.name}
    try:
        run = ingest_workbook(path=str(newest), trigger=RunTrigger.BEAT)
    except AlreadyRunning as exc:
        return {"status": "skipped", "detail": str(exc)}
    return {"status": run.status, "run_id": run.pk}


@shared_task(acks_late=True, retry_backoff=True, max_retries=2)
def profile_run_task(run_id: int) -> dict:
    """Profile the run's workbook with the inspector and store it on the run (idempotent)."""
    ingestion_run_attach_profile(run_id=run_id)
    return {"run_id": run_id}
