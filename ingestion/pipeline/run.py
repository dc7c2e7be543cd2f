"""One run of the pipeline: hash, stage, merge, derive, orphans and the data_changed signal in one transaction."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from ingestion.choices import RunStatus
from ingestion.contract import SHEETS, SHEETS_BY_NAME
from ingestion.inspector import profile_workbook
from ingestion.models import IngestionRun
from ingestion.pipeline.derive import data_as_of, unchanged_sheets
from ingestion.pipeline.errors import IngestionError
from ingestion.pipeline.merge import merge_all
from ingestion.pipeline.orphans import record_orphans
from ingestion.pipeline.progress import Progress, ProgressCallback, log_step, progress_key
from ingestion.pipeline.stage import PREFETCHED_SHEETS, stage_all
from ingestion.reader import (
    WorkbookError,
    WorkbookReader,
    file_sha256,
)
from prodplan import metrics
from prodplan.cache import bump_data_version
from prodplan.signals import data_changed
from prodplan.task_queue import QueueUnavailable, enqueue, task_named

logger = logging.getLogger("prodplan.ingestion")


def run_pipeline(
    run: IngestionRun, path: Path, on_progress: ProgressCallback | None, *, force: bool = False, profile: bool = True,
    warm_caches: bool = True,
) -> IngestionRun:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    run.status = RunStatus.RUNNING
    run.started_at = timezone.now()
    run.error = ""
    run.save(update_fields=["status", "started_at", "error"])
    progress = Progress(run.pk, on_progress, {})
    try:
        step = time.perf_counter()
        if not path.exists():
            raise WorkbookError(f"file not found: {path}")
        run.file_size = path.stat().st_size
        run.file_sha256 = file_sha256(path)
        timings["hash"] = round(time.perf_counter() - step, 3)
        log_step(run, "hashed", sha256=run.file_sha256, seconds=timings["hash"])
        last = IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).exclude(pk=run.pk).order_by("-id").first()
        if last is not None and last.file_sha256 == run.file_sha256 and not force:
            run.status = RunStatus.NOOP
            run.as_of = last.as_of
            run.sheet_sha256 = last.sheet_sha256
            run.counts = {"noop_of_run": last.pk}
            return finish(run, started, timings)

        step = time.perf_counter()
        reader = WorkbookReader(path)
        reader.check_structure()
        timings["open"] = round(time.perf_counter() - step, 3)
        log_step(run, "opened", seconds=timings["open"])

        # The biggest sheet's parse (calamine, GIL released) overlaps the hashing and the small sheets.
        reader.prefetch(SHEETS_BY_NAME[PREFETCHED_SHEETS[0]])
        step = time.perf_counter()
        run.sheet_sha256 = {spec.name: reader.sheet_sha256(spec) for spec in SHEETS}
        skip = set() if force or last is None else unchanged_sheets(run.sheet_sha256, last.sheet_sha256 or {})
        timings["sheet_hashes"] = round(time.perf_counter() - step, 3)
        if skip:
            log_step(run, "unchanged sheets skipped", sheets=sorted(skip), since_run=last.pk)

        with contextlib.closing(reader), transaction.atomic():
            with connection.cursor() as cursor:
                # Set-wise validation and merge hash and sort hundreds of thousands of keys.
                cursor.execute("SET LOCAL work_mem = '256MB'")
            sheet_runs = stage_all(run, reader, progress, timings, skip)
            merge_all(run, sheet_runs, progress, timings, skip)
            step = time.perf_counter()
            run.as_of = data_as_of()
            record_orphans(run, sheet_runs)
            # Each app refreshes its aggregates in this transaction and queues its cache warm-ups for the commit.
            data_changed.send(sender=IngestionRun, run_id=run.pk, as_of=run.as_of,
                              sheets=sorted(spec.name for spec in SHEETS if spec.name not in skip),
                              warm_cache=warm_caches)
            run.data_version = bump_data_version()
            timings["derive_and_refresh"] = round(time.perf_counter() - step, 3)
            for sheet_run in sheet_runs.values():
                if sheet_run.rows_read != sheet_run.rows_loaded + sheet_run.rows_rejected:
                    raise IngestionError(
                        f"sheet {sheet_run.sheet}: rows read {sheet_run.rows_read} != loaded {sheet_run.rows_loaded} "
                        f"+ rejected {sheet_run.rows_rejected}"
                    )
                sheet_run.reconciled = True
                sheet_run.save()
            run.counts = {
                name: {f: getattr(sr, f) for f in ("rows_read", "rows_loaded", "rows_rejected", "inserted", "updated", "unchanged", "deleted", "orphans", "skipped")}
                for name, sr in sheet_runs.items()
            }
            run.status = RunStatus.SUCCEEDED
            finish(run, started, timings, progress)
        for name, sheet_run in sheet_runs.items():
            metrics.INGESTED_ROWS.labels(sheet=name, outcome="loaded").inc(sheet_run.rows_loaded)
            metrics.INGESTED_ROWS.labels(sheet=name, outcome="rejected").inc(sheet_run.rows_rejected)
        if profile:
            # The data is committed; the inspector's profile re-reads the file, so it runs as its own task.
            # Without a broker the run still succeeded: the profile is missing, and the log says why.
            with contextlib.suppress(QueueUnavailable):
                enqueue(task_named("ingestion.tasks.profile_run_task"), run.pk)
        return run
    except Exception as exc:  # every failure is recorded on the run; the transaction rolled back
        if isinstance(exc, WorkbookError | IngestionError):
            message = str(exc)
        else:
            logger.exception("ingestion failed", extra={"run_id": run.pk})
            message = f"{type(exc).__name__}: {exc}"
        run.status = RunStatus.FAILED
        run.error = as_uploaded(message, run)
        run.counts = {}
        return finish(run, started, timings, progress)


def as_uploaded(message: str, run: IngestionRun) -> str:
    """A failure names the file as the user uploaded it, not as it is stored (uploads get an internal name)."""
    stored = Path(run.file_path).name if run.file_path else ""
    if stored and run.file_name and stored != run.file_name:
        message = message.replace(str(run.file_path), run.file_name).replace(stored, run.file_name)
    return message


def finish(run: IngestionRun, started: float, timings: dict, progress: Progress | None = None) -> IngestionRun:
    run.finished_at = timezone.now()
    run.duration_seconds = round(time.perf_counter() - started, 3)
    run.timings = timings
    if progress is not None:
        for state in progress.state.values():
            state["stage"] = "done" if run.status == RunStatus.SUCCEEDED else state.get("stage")
        run.progress = progress.state
        cache.delete(progress_key(run.pk))
    run.save()
    metrics.INGESTION_RUNS.labels(status=run.status).inc()
    metrics.INGESTION_DURATION.observe(run.duration_seconds)
    log_step(run, "finished", status=run.status, seconds=run.duration_seconds, error=run.error or None)
    return run


def attach_profile(run: IngestionRun, path: Path) -> None:
    try:
        run.profile = profile_workbook(path)
        IngestionRun.objects.filter(pk=run.pk).update(profile=run.profile)
    except Exception:  # noqa: BLE001 - a profile failure must not fail a committed run
        logger.exception("profiling failed", extra={"run_id": run.pk})
