"""Ingestion services: start, queue and run an ingestion (the pipeline is ingestion.pipeline), and the run heartbeat."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ingestion.choices import RunStatus, RunTrigger
from ingestion.models import IngestionRun
from ingestion.pipeline.errors import AlreadyRunning, IngestionError, ShrinkRefused
from ingestion.pipeline.lock import ADVISORY_LOCK_KEY, fail_interrupted_runs, lock_is_held, try_lock, unlock
from ingestion.pipeline.progress import ProgressCallback
from ingestion.pipeline.run import attach_profile, run_pipeline
from ingestion.uploads import inbox_path, store_upload, upload_discard
from prodplan.task_queue import PENDING_RUN_PICKUP_SECONDS, enqueue_run, task_named

__all__ = [
    "ADVISORY_LOCK_KEY", "PENDING_RUN_PICKUP_SECONDS", "AlreadyRunning", "IngestionError", "ShrinkRefused",
    "cache_warmups_useful", "ingest_run", "ingest_workbook", "ingestion_enqueue", "ingestion_request",
    "ingestion_run_attach_profile", "ingestion_start", "pending_runs_fail_unclaimed", "runs_fail_dead",
]


# --------------------------------------------------------------------------------------------------
# Entry points


def ingestion_start(*, trigger: str, uploaded=None, inbox_name: str = "", allow_shrink: bool = False) -> IngestionRun:
    """Record a pending run for an uploaded workbook (stored first) or one named in the inbox, under the name the
    user knows it by; the web upload and the API upload both start here (the caller then queues the run).

    Raises UploadRejected (not a workbook, too big, not in the inbox) or AlreadyRunning (a stored upload is deleted:
    no run will read it; an inbox file is not ours to delete)."""
    stored = None
    if uploaded is not None:
        path = stored = store_upload(uploaded)
        display_name = uploaded.name
    else:
        path = inbox_path(inbox_name)
        display_name = path.name
    try:
        run = ingestion_request(path=str(path), trigger=trigger, allow_shrink=allow_shrink)
    except AlreadyRunning:
        if stored is not None:
            upload_discard(stored)
        raise
    run.file_name = display_name[:255]
    IngestionRun.objects.filter(pk=run.pk).update(file_name=run.file_name)
    return run


def ingestion_request(*, path: str, trigger: str = RunTrigger.CLI, allow_shrink: bool = False) -> IngestionRun:
    """Record a pending run for a workbook, refusing at once when another run is queued or in progress."""
    from django.db.models import Q

    with transaction.atomic():
        # Serialise concurrent requests so two of them can never both be accepted.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY + 1])
        recent = pending_runs_fail_unclaimed()
        active = (
            IngestionRun.objects.filter(Q(status=RunStatus.RUNNING) | Q(status=RunStatus.PENDING, created_at__gte=recent))
            .order_by("-id")
            .first()
        )
        if active is not None and (active.status == RunStatus.PENDING or lock_is_held()):
            raise AlreadyRunning(active.pk)
        source = Path(path)
        return IngestionRun.objects.create(
            file_name=source.name, file_path=str(source), trigger=trigger, allow_shrink=allow_shrink, status=RunStatus.PENDING
        )


def pending_runs_fail_unclaimed() -> datetime:
    """Fail the pending runs no worker picked up within PENDING_RUN_PICKUP_SECONDS; returns that window's start."""
    from datetime import timedelta

    since = timezone.now() - timedelta(seconds=PENDING_RUN_PICKUP_SECONDS)
    IngestionRun.objects.filter(status=RunStatus.PENDING, created_at__lt=since).update(
        status=RunStatus.FAILED, finished_at=timezone.now(),
        error=f"no worker started this run within {PENDING_RUN_PICKUP_SECONDS} s (no worker running, or the queued "
              "task was lost when the broker restarted); no data was changed: upload the workbook again",
    )
    return since


def ingestion_enqueue(*, run_id: int) -> None:
    """Queue a pending run for the worker; when the broker cannot take it, the run fails with that reason
    (a pending run that nothing will execute would answer "already running" to every request for 30 minutes)."""
    enqueue_run(task_named("ingestion.tasks.ingest_run_task"), runs=IngestionRun.objects, run_id=run_id)


def ingest_workbook(
    *,
    path: str,
    trigger: str = RunTrigger.CLI,
    allow_shrink: bool = False,
    run: IngestionRun | None = None,
    on_progress: ProgressCallback | None = None,
    force: bool = False,
    profile: bool = True,
    warm_caches: bool = True,
) -> IngestionRun:
    """Run the whole pipeline for one workbook. Never raises for bad input: the run records the failure.

    force=True runs the pipeline even when the file equals the last successful run's (a re-check).
    warm_caches=False skips the post-commit cache warm-ups (see cache_warmups_useful).

    Raises AlreadyRunning when another run holds the lock (nothing is recorded for this request)."""
    if not try_lock():
        active = IngestionRun.objects.filter(status=RunStatus.RUNNING).order_by("-id").first()
        raise AlreadyRunning(active.pk if active else None)
    try:
        fail_interrupted_runs(exclude=run.pk if run else None)
        if run is None:
            run = IngestionRun.objects.create(
                file_name=Path(path).name, file_path=str(path), trigger=trigger, allow_shrink=allow_shrink
            )
        return run_pipeline(run, Path(path), on_progress, force=force, profile=profile, warm_caches=warm_caches)
    finally:
        unlock()


def ingest_run(*, run_id: int, on_progress: ProgressCallback | None = None) -> IngestionRun:
    """Execute a pending run recorded by ingestion_request (the Celery task's body)."""
    run = IngestionRun.objects.get(pk=run_id)
    if run.status not in (RunStatus.PENDING,):
        return run  # already executed: a retried task must not run it twice
    try:
        return ingest_workbook(path=run.file_path, run=run, allow_shrink=run.allow_shrink, on_progress=on_progress)
    except AlreadyRunning as exc:
        IngestionRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error=str(exc), finished_at=timezone.now())
        raise


def cache_warmups_useful(*, process_exits: bool) -> bool:
    """Whether the post-commit cache warm-ups (orders, quality, inventory) can help any reader.

    They fill the cache the API reads. With a shared cache (Redis) the tasks go to the worker and
    the CLI only enqueues them; when the ingestion runs inside the serving process (an upload with
    eager Celery) they fill that process's own cache. Only in a short-lived process (the ingest
    CLI) with eager Celery and a process-local cache (LocMemCache) would they compute analytics
    into a cache that dies when the process exits a moment later: seconds of pure waste."""
    from celery import current_app

    backend = settings.CACHES["default"]["BACKEND"]
    process_local = backend.rsplit(".", 1)[-1] in {"LocMemCache", "DummyCache"}
    return not (process_exits and current_app.conf.task_always_eager and process_local)


def runs_fail_dead() -> int:
    """The heartbeat of running runs: a run marked running while nobody holds the ingestion lock lost its process
    (killed, out of memory, a crashed worker: the lock dies with the database session). Fail it, saying so, so that
    it never shows "running" forever. Returns how many were failed. Cheap (one query) when nothing runs."""
    if not IngestionRun.objects.filter(status=RunStatus.RUNNING).exists() or lock_is_held():
        return 0
    return IngestionRun.objects.filter(status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the process running it stopped (killed, out of memory or crashed) before committing; "
              "no data was changed",
    )


def ingestion_run_attach_profile(*, run_id: int) -> None:
    """The inspector's profile of the run's file, stored on the run for stewards (never blocks the data)."""
    run = IngestionRun.objects.get(pk=run_id)
    attach_profile(run, Path(run.file_path))
