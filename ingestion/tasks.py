"""Celery tasks of ingestion: run a recorded ingestion, watch the inbox workbook and prune old uploads (beat)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from celery import shared_task
from django.conf import settings

from ingestion.choices import RunTrigger
from ingestion.services import AlreadyRunning, ingest_run, ingest_workbook, ingestion_run_attach_profile
from prodplan.task_guard import single_instance

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def ingest_run_task(self, run_id: int) -> dict:
    """Execute a pending run; a second copy finds it done (or the lock held) and does nothing.

    On a worker (tasks not eager) the run executes in a child process under INGEST_MEMORY_LIMIT_MB
    (ingestion.isolation): a crash fails the run with how it died, and the worker lives on. Eager mode (no Redis:
    tests, the embedded demo) runs it in this process, where the live progress cache is."""
    if settings.INGEST_IN_CHILD_PROCESS and not self.request.is_eager:
        from ingestion.isolation import ingest_run_in_child

        run = ingest_run_in_child(run_id=run_id)
        return {"run_id": run.pk, "status": run.status}
    try:
        run = ingest_run(run_id=run_id)
    except AlreadyRunning as exc:
        return {"run_id": run_id, "status": "skipped", "detail": str(exc)}
    return {"run_id": run.pk, "status": run.status}


@shared_task
def prune_uploads_task() -> dict:
    """Delete stored uploads past their retention (beat, daily)."""
    from ingestion.uploads import uploads_prune

    return uploads_prune()


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
@single_instance
def ingest_inbox_task() -> dict:
    """Ingest the newest workbook in the inbox once it has settled, unless it is known (see inbox_decision)."""
    from ingestion.selectors import inbox_decision

    decision = inbox_decision(
        inbox=Path(settings.INBOX_DIR), now=time.time(), settle_seconds=settings.INBOX_SETTLE_SECONDS,
        retry_failed_after_seconds=settings.INBOX_RETRY_FAILED_AFTER_SECONDS,
    )
    if decision["status"] != "ingest":
        return decision
    try:
        run = ingest_workbook(path=str(decision["path"]), trigger=RunTrigger.BEAT)
    except AlreadyRunning as exc:
        return {"status": "skipped", "detail": str(exc)}
    return {"status": run.status, "run_id": run.pk}


@shared_task(acks_late=True, retry_backoff=True, max_retries=2)
def profile_run_task(run_id: int) -> dict:
    """Profile the run's workbook with the inspector and store it on the run (idempotent)."""
    ingestion_run_attach_profile(run_id=run_id)
    return {"run_id": run_id}
