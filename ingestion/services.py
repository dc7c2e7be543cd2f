"""The ingestion pipeline (workbook → PostgreSQL in one transaction) and the steward's reject triage."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from ingestion.choices import IssueStatus, RejectReason, RunStatus, RunTrigger, TriageStatus
from ingestion.contract import SHEETS, SHEETS_BY_NAME, SheetSpec
from ingestion.inspector import profile_workbook
from ingestion.models import DataQualityIssue, IngestionRun, Reject, SheetRun
from ingestion.pipeline.sql import (
    ORPHAN_CHECKS,
    PER_KEY_ENTITIES,
    TARGETS,
    TOUCHED,
    apply_changed_sql,
    apply_phase_event_times_sql,
    changed_rows_sql,
    changed_table,
    copy_columns,
    copy_types,
    delete_vanished_sql,
    derive_error_event_times_sql,
    derive_phase_event_times_sql,
    order_phase_ids_sql,
    orphan_keys_sql,
    orphan_summary_sql,
    recreate_index_sql,
    reject_insert_sql,
    secondary_indexes_sql,
    staging_ddl,
    staging_table,
    target_types_sql,
    touched_ddl,
    touched_from_changes_sql,
    touched_from_load_sql,
    upsert_sql,
    validation_sql,
    vanished_count_sql,
)
from ingestion.reader import (
    COERCERS,
    CellError,
    WorkbookError,
    WorkbookReader,
    coerce_id,
    coerce_text,
    file_sha256,
    jsonable,
    normalise_header,
)
from orders.partitioning import ensure_order_phase_partitions
from prodplan import metrics
from prodplan.cache import bump_data_version
from prodplan.signals import data_changed
from prodplan.task_queue import PENDING_RUN_PICKUP_SECONDS, QueueUnavailable, enqueue, enqueue_run, task_named
from prodplan.xlsx import safe_row

logger = logging.getLogger("prodplan.ingestion")

ADVISORY_LOCK_KEY = 74_210_001
PROGRESS_EVERY_ROWS = 20_000
BULK_INDEX_ROWS = 50_000  # a first load at least this big builds its table's plain indexes after the INSERT


class IngestionError(Exception):
    """A run that cannot proceed; the message says why and what to do."""


class AlreadyRunning(IngestionError):
    def __init__(self, run_id: int | None):
        self.run_id = run_id
        super().__init__(f"already running: run {run_id}" if run_id else "already running: another ingestion holds the lock")


class ShrinkRefused(IngestionError):
    pass


ProgressCallback = Callable[[str, int, int, float], None]


def progress_key(run_id: int) -> str:
    return f"prodplan:ingestion:progress:{run_id}"


def run_progress(run: IngestionRun) -> dict:
    """Live per-sheet progress (cache while running; the stored copy once finished)."""
    return cache.get(progress_key(run.pk)) or run.progress or {}


@dataclass
class _Progress:
    run_id: int
    callback: ProgressCallback | None
    state: dict

    def update(self, sheet: str, done: int, total: int, started: float, stage: str = "reading") -> None:
        elapsed = max(time.perf_counter() - started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate and total > done else 0.0
        self.state[sheet] = {"rows": done, "total": total, "rows_per_s": round(rate), "eta_s": round(eta, 1), "stage": stage}
        cache.set(progress_key(self.run_id), self.state, 3600)
        if self.callback:
            self.callback(sheet, done, total, elapsed)


def _log_step(run: IngestionRun, step: str, **fields) -> None:
    logger.info("ingestion step", extra={"run_id": run.pk, "step": step, **fields})


# --------------------------------------------------------------------------------------------------
# Entry points


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
        if active is not None and (active.status == RunStatus.PENDING or _lock_is_held()):
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
    if not _try_lock():
        active = IngestionRun.objects.filter(status=RunStatus.RUNNING).order_by("-id").first()
        raise AlreadyRunning(active.pk if active else None)
    try:
        _fail_interrupted_runs(exclude=run.pk if run else None)
        if run is None:
            run = IngestionRun.objects.create(
                file_name=Path(path).name, file_path=str(path), trigger=trigger, allow_shrink=allow_shrink
            )
        return _run_pipeline(run, Path(path), on_progress, force=force, profile=profile, warm_caches=warm_caches)
    finally:
        _unlock()


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


# --------------------------------------------------------------------------------------------------
# Lock


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


def _lock_is_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            [ADVISORY_LOCK_KEY],
        )
        return bool(cursor.fetchone()[0])


def _fail_interrupted_runs(*, exclude: int | None) -> None:
    """We hold the lock, so any run still marked running died mid-way (killed process): say so."""
    stale = IngestionRun.objects.filter(status=RunStatus.RUNNING)
    if exclude:
        stale = stale.exclude(pk=exclude)
    stale.update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the process running it stopped before committing; no data was changed",
    )


def runs_fail_dead() -> int:
    """The heartbeat of running runs: a run marked running while nobody holds the ingestion lock lost its process
    (killed, out of memory, a crashed worker: the lock dies with the database session). Fail it, saying so, so that
    it never shows "running" forever. Returns how many were failed. Cheap (one query) when nothing runs."""
    if not IngestionRun.objects.filter(status=RunStatus.RUNNING).exists() or _lock_is_held():
        return 0
    return IngestionRun.objects.filter(status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the process running it stopped (killed, out of memory or crashed) before committing; "
              "no data was changed",
    )


# --------------------------------------------------------------------------------------------------
# Pipeline


def _run_pipeline(
    run: IngestionRun, path: Path, on_progress: ProgressCallback | None, *, force: bool = False, profile: bool = True,
    warm_caches: bool = True,
) -> IngestionRun:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    run.status = RunStatus.RUNNING
    run.started_at = timezone.now()
    run.error = ""
    run.save(update_fields=["status", "started_at", "error"])
    progress = _Progress(run.pk, on_progress, {})
    try:
        step = time.perf_counter()
        if not path.exists():
            raise WorkbookError(f"file not found: {path}")
        run.file_size = path.stat().st_size
        run.file_sha256 = file_sha256(path)
        timings["hash"] = round(time.perf_counter() - step, 3)
        _log_step(run, "hashed", sha256=run.file_sha256, seconds=timings["hash"])
        last = IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).exclude(pk=run.pk).order_by("-id").first()
        if last is not None and last.file_sha256 == run.file_sha256 and not force:
            run.status = RunStatus.NOOP
            run.as_of = last.as_of
            run.sheet_sha256 = last.sheet_sha256
            run.counts = {"noop_of_run": last.pk}
            return _finish(run, started, timings)

        step = time.perf_counter()
        reader = WorkbookReader(path)
        reader.check_structure()
        timings["open"] = round(time.perf_counter() - step, 3)
        _log_step(run, "opened", seconds=timings["open"])

        # The biggest sheet's parse (calamine, GIL released) overlaps the hashing and the small sheets.
        reader.prefetch(SHEETS_BY_NAME[PREFETCHED_SHEETS[0]])
        step = time.perf_counter()
        run.sheet_sha256 = {spec.name: reader.sheet_sha256(spec) for spec in SHEETS}
        skip = set() if force or last is None else _unchanged_sheets(run.sheet_sha256, last.sheet_sha256 or {})
        timings["sheet_hashes"] = round(time.perf_counter() - step, 3)
        if skip:
            _log_step(run, "unchanged sheets skipped", sheets=sorted(skip), since_run=last.pk)

        with contextlib.closing(reader), transaction.atomic():
            with connection.cursor() as cursor:
                # Set-wise validation and merge hash and sort hundreds of thousands of keys.
                cursor.execute("SET LOCAL work_mem = '256MB'")
            sheet_runs = _stage_all(run, reader, progress, timings, skip)
            _merge_all(run, sheet_runs, progress, timings, skip)
            step = time.perf_counter()
            run.as_of = _data_as_of()
            _record_orphans(run, sheet_runs)
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
            _finish(run, started, timings, progress)
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
        run.error = _as_uploaded(message, run)
        run.counts = {}
        return _finish(run, started, timings, progress)


def _as_uploaded(message: str, run: IngestionRun) -> str:
    """A failure names the file as the user uploaded it, not as it is stored (uploads get an internal name)."""
    stored = Path(run.file_path).name if run.file_path else ""
    if stored and run.file_name and stored != run.file_name:
        message = message.replace(str(run.file_path), run.file_name).replace(stored, run.file_name)
    return message


def _finish(run: IngestionRun, started: float, timings: dict, progress: _Progress | None = None) -> IngestionRun:
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
    _log_step(run, "finished", status=run.status, seconds=run.duration_seconds, error=run.error or None)
    return run


# Parsed ahead in a background thread, one at a time, in this order; small sheets are parsed inline.
PREFETCHED_SHEETS = ("FasesOrdemFabrico", "FuncionariosFaseOrdemFabrico", "OrdemFabricoErros")

# Derived columns cross sheets: an order's creation dates its phases' event time, and phases date
# errors. A changed sheet does not re-load an unchanged sheet deriving from it: the dependent's derived
# columns are recomputed set-wise, for the rows that refer to a touched order or phase (merge.TOUCHED).
DERIVED_FROM = {"OrdensFabrico": ("FasesOrdemFabrico", "OrdemFabricoErros"), "FasesOrdemFabrico": ("OrdemFabricoErros",)}


def _unchanged_sheets(current: dict[str, str], previous: dict[str, str]) -> set[str]:
    """Sheets whose content hash equals the last successful run's (not re-read; see DERIVED_FROM)."""
    return {name for name, digest in current.items() if digest and previous.get(name) == digest}


def _stage_all(
    run: IngestionRun, reader: WorkbookReader, progress: _Progress, timings: dict, skip: set[str]
) -> dict[str, SheetRun]:
    """COPY every changed sheet into its staging table, validate set-wise, record rejects."""
    sheet_runs: dict[str, SheetRun] = {}
    raw_cursor = connection.cursor()
    cursor = raw_cursor.cursor  # the psycopg 3 cursor, for COPY
    to_read = [spec for spec in SHEETS if spec.name not in skip]
    for spec in SHEETS:
        if spec.name in skip:
            sheet_runs[spec.name] = SheetRun.objects.create(
                run=run, sheet=spec.name, sha256=run.sheet_sha256[spec.name], skipped=True
            )
            progress.update(spec.name, 0, 0, time.perf_counter(), stage="unchanged")
    big = [SHEETS_BY_NAME[name] for name in PREFETCHED_SHEETS if name not in skip]
    for spec in to_read:
        step = time.perf_counter()
        if spec in big and big.index(spec) + 1 < len(big):
            reader.prefetch(big[big.index(spec) + 1])  # parse the next big sheet while this one is coerced and copied
        # ON COMMIT DROP cleans up a committed run; a run nested in an outer transaction (tests, re-validation) reuses the name.
        raw_cursor.execute(f"DROP TABLE IF EXISTS {staging_table(spec)}")
        raw_cursor.execute(staging_ddl(spec))
        rows_read = 0
        columns = copy_columns(spec)
        keyless = not spec.key
        copy_sql = f"COPY {staging_table(spec)} ({', '.join(_quote(c) for c in columns)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(copy_sql) as copy:
            copy.set_types(copy_types(spec))
            write = copy.write_row
            for row_number, values, error in reader.rows(spec):
                rows_read += 1
                if error is None:
                    record = [row_number, None, None, None, None, *values]
                else:
                    record = [row_number, error[0], error[1], error[2], error[3], *values]
                if keyless:
                    record.append(hashlib.sha256(repr(values).encode()).hexdigest())
                write(record)
                if rows_read % PROGRESS_EVERY_ROWS == 0:
                    progress.update(spec.name, rows_read, reader.sheet_height(spec), step)
        progress.update(spec.name, rows_read, reader.sheet_height(spec), step, stage="validating")
        table = staging_table(spec)
        # Statistics for the validation and the merge's joins. No index on the staged keys: every later
        # statement joining them (shrink guard, changed rows, vanished rows) is a hash join over all rows.
        raw_cursor.execute(f"ANALYZE {table}")
        for statement in validation_sql(spec):
            raw_cursor.execute(statement)
        raw_cursor.execute(reject_insert_sql(spec), [run.pk])
        rejected = raw_cursor.rowcount
        raw_cursor.execute(f"SELECT _reject, count(*) FROM {table} WHERE _reject IS NOT NULL GROUP BY 1")
        for reason, count in raw_cursor.fetchall():
            metrics.REJECTS.labels(sheet=spec.name, reason=reason).inc(count)
        sheet_runs[spec.name] = SheetRun.objects.create(
            run=run, sheet=spec.name, sha256=run.sheet_sha256[spec.name], rows_read=rows_read,
            rows_rejected=rejected, rows_loaded=rows_read - rejected, seconds=round(time.perf_counter() - step, 3),
        )
        timings[f"stage:{spec.name}"] = round(time.perf_counter() - step, 3)
        _log_step(run, "staged", sheet=spec.name, rows=rows_read, rejected=rejected, seconds=timings[f"stage:{spec.name}"])
    raw_cursor.close()
    return sheet_runs


def _merge_all(run: IngestionRun, sheet_runs: dict[str, SheetRun], progress: _Progress, timings: dict, skip: set[str]) -> None:
    """Shrink guard for every changed sheet first, then merge in load order (catalogues, orders, phases, …)."""
    changed = [spec for spec in SHEETS if spec.name not in skip]
    with connection.cursor() as cursor:
        shrinking = []
        stored_rows: dict[str, int] = {}
        for spec in changed:
            cursor.execute(vanished_count_sql(spec))
            vanished, stored = cursor.fetchone()
            stored_rows[spec.name] = stored
            sheet_runs[spec.name].deleted = vanished
            if stored and vanished / stored > settings.INGEST_MAX_SHRINK_FRACTION and not run.allow_shrink:
                shrinking.append(f"{spec.name} would lose {vanished:,} of {stored:,} stored rows ({vanished / stored:.1%})")
        if shrinking:
            raise ShrinkRefused(
                "refused: this file would delete more than "
                f"{settings.INGEST_MAX_SHRINK_FRACTION:.0%} of stored rows — {'; '.join(shrinking)}. Nothing was changed. "
                "If the export is really complete, run again with --allow-shrink (API: allow_shrink=true)."
            )
        derive, touch = _derivation_plan(skip)
        if touch:
            for statement in touched_ddl():
                cursor.execute(statement)
        for spec in SHEETS:
            if spec.name in derive:
                _derive(run, cursor, spec, sheet_runs[spec.name], timings, record_touched=spec.name in touch)
            if spec.name in skip:
                continue
            step = time.perf_counter()
            sheet_run = sheet_runs[spec.name]
            into = TOUCHED[spec.name] if spec.name in touch else None
            if stored_rows[spec.name] == 0:
                # A first load: a plain INSERT of every valid row; a big one builds the plain indexes afterwards.
                if spec.name == "FasesOrdemFabrico":
                    _ensure_partitions(cursor)
                with _indexes_built_after(cursor, TARGETS[spec.name].table, big=sheet_run.rows_loaded >= BULK_INDEX_ROWS):
                    cursor.execute(upsert_sql(spec, empty_target=True))
                    sheet_run.inserted, sheet_run.updated = cursor.fetchone()[0], 0
                if into:
                    cursor.execute(touched_from_load_sql(spec))
            else:
                sheet_run.inserted, sheet_run.updated = _merge_changed(cursor, spec)
                if into:
                    cursor.execute(touched_from_changes_sql(spec))
                if sheet_run.deleted:  # counted exactly by the shrink guard above; nothing to delete otherwise
                    cursor.execute(delete_vanished_sql(spec, touched=into))
                    sheet_run.deleted = cursor.rowcount
            _fault_point(f"merge:{spec.name}")
            sheet_run.unchanged = sheet_run.rows_loaded - sheet_run.inserted - sheet_run.updated
            sheet_run.seconds = round(sheet_run.seconds + time.perf_counter() - step, 3)
            timings[f"merge:{spec.name}"] = round(time.perf_counter() - step, 3)
            progress.update(spec.name, sheet_run.rows_read, sheet_run.rows_read, time.perf_counter() - 1, stage="merged")
            _log_step(
                run, "merged", sheet=spec.name, inserted=sheet_run.inserted, updated=sheet_run.updated,
                unchanged=sheet_run.unchanged, deleted=sheet_run.deleted, seconds=timings[f"merge:{spec.name}"],
            )


@contextlib.contextmanager
def _indexes_built_after(cursor, table: str, *, big: bool):
    """Drop the plain secondary indexes of an empty table, load it, then build them in one sorted pass each.

    Hundreds of thousands of rows inserted one index entry at a time cost more than a CREATE INDEX
    afterwards. Only for a first load (the table holds nothing) of many rows: the DROP takes an
    exclusive lock until the commit, so readers of this (still empty) table wait for the load
    instead of seeing nothing. Inside the run's transaction: a failed or killed run restores them."""
    if not big:
        yield
        return
    cursor.execute(secondary_indexes_sql(), [table])
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    yield
    with _local_setting(cursor, "maintenance_work_mem", "256MB"):
        for _, definition in indexes:
            cursor.execute(recreate_index_sql(definition))


@contextlib.contextmanager
def _local_setting(cursor, name: str, value: str):
    """A server setting changed for the statements inside (transaction-local), then put back for the rest of the run."""
    cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
    previous = cursor.fetchone()[0]
    yield
    cursor.execute("SELECT set_config(%s, %s, true)", [name, previous])


def _derivation_plan(skip: set[str]) -> tuple[set[str], set[str]]:
    """(unchanged sheets whose derived columns need recomputing, sheets that must record the ids they touch).

    In load order: a merged sheet may touch what its dependents derive from; so may a recomputed one."""
    touching: set[str] = set()
    derive: set[str] = set()
    for spec in SHEETS:
        if spec.name not in skip:
            touching.add(spec.name)
        elif any(spec.name in DERIVED_FROM.get(source, ()) for source in touching):
            derive.add(spec.name)
            touching.add(spec.name)
    touch = {source for source in touching & set(DERIVED_FROM) if derive & set(DERIVED_FROM[source])}
    return derive, touch


def _derive(run: IngestionRun, cursor, spec: SheetSpec, sheet_run: SheetRun, timings: dict, *, record_touched: bool) -> None:
    """Recompute the cross-sheet derived columns of an unchanged (not re-read) sheet, for the rows that
    refer to an order or order phase touched by this run; counted as the sheet's updated rows."""
    step = time.perf_counter()
    # The partitioned parents carry no statistics (ANALYZE never runs on them by itself), so the planner
    # may sort half a million phases for a merge join to look up a few hundred: hash joins stay linear.
    with _local_setting(cursor, "enable_mergejoin", "off"):
        if spec.name == "FasesOrdemFabrico":
            for statement in derive_phase_event_times_sql():
                cursor.execute(statement)
            cursor.execute("SELECT min(new), max(new) FROM derived_order_phases")
            first, last = cursor.fetchone()
            if first is not None:
                ensure_order_phase_partitions(first, last)
            update, touch = apply_phase_event_times_sql()
            cursor.execute(update)
            sheet_run.updated = cursor.rowcount
            if record_touched:
                cursor.execute(touch)
        elif spec.name == "OrdemFabricoErros":
            cursor.execute(derive_error_event_times_sql())
            sheet_run.updated = cursor.rowcount
        else:
            raise AssertionError(f"no derivation for {spec.name}")
    sheet_run.seconds = round(time.perf_counter() - step, 3)
    timings[f"derive:{spec.name}"] = sheet_run.seconds
    _log_step(run, "derived", sheet=spec.name, updated=sheet_run.updated, seconds=sheet_run.seconds)


def _merge_changed(cursor, spec: SheetSpec) -> tuple[int, int]:
    """Upsert only the rows that are new or differ from the stored ones; returns (inserted, updated).

    An INSERT … ON CONFLICT DO UPDATE … WHERE changed would still probe and lock every conflicting
    row (half a million on the phases sheet for a 1% change): a set-wise anti-join finds the few
    changed rows first, and only those are written."""
    cursor.execute(target_types_sql(), [TARGETS[spec.name].table])
    types = dict(cursor.fetchall())
    for statement in changed_rows_sql(spec, types):
        cursor.execute(statement)
    if spec.name == "FasesOrdemFabrico":
        # Only the changed rows can need a partition the stored ones do not already have.
        cursor.execute(f"SELECT min(event_time), max(event_time) FROM {changed_table(spec)}")
        first, last = cursor.fetchone()
        if first is not None:
            ensure_order_phase_partitions(first, last)
    update, insert = apply_changed_sql(spec)
    updated = 0
    if update:
        cursor.execute(update)
        updated = cursor.rowcount
    cursor.execute(insert)
    return cursor.rowcount, updated


def _fault_point(name: str) -> None:
    """Fault injection for the kill-mid-merge test: PRODPLAN_FAULT_PAUSE='<point>:<marker file>' pauses there.

    Unset in every real deployment; the reliability test sets it on a subprocess it then kills."""
    spec = os.environ.get("PRODPLAN_FAULT_PAUSE", "")
    if spec and spec.rsplit(":", 1)[0] == name:
        Path(spec.rsplit(":", 1)[1]).write_text(str(os.getpid()))
        time.sleep(120)


def _ensure_partitions(cursor) -> None:
    cursor.execute(
        "SELECT min(t), max(t) FROM (SELECT coalesce(s.\"FaseOf_Fim\", s.\"FaseOf_Inicio\", o.created_at AT TIME ZONE 'Europe/Lisbon', "
        "s.\"FaseOf_DataPrevista\") AT TIME ZONE 'Europe/Lisbon' AS t "
        "FROM stg_fasesordemfabrico s LEFT JOIN orders_manufacturingorder o ON o.id = s.\"FaseOf_OfId\" WHERE s._reject IS NULL) x"
    )
    first, last = cursor.fetchone()
    if first is not None:
        ensure_order_phase_partitions(first, last)


def _data_as_of():
    """The snapshot time: the latest real timestamp in the data (phase starts/ends, order creation/finish)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT greatest((SELECT max(started_at) FROM orders_orderphase), (SELECT max(ended_at) FROM orders_orderphase), "
            "(SELECT max(created_at) FROM orders_manufacturingorder), (SELECT max(finished_at) FROM orders_manufacturingorder))"
        )
        return cursor.fetchone()[0]


def _record_orphans(run: IngestionRun, sheet_runs: dict[str, SheetRun]) -> None:
    """Orphan references become data-quality issues with counts; issues not seen again close (reconcile).

    Checked on the stored rows, so a sheet not re-read this run is counted too. The counts go on the
    in-memory sheet runs, which the pipeline saves afterwards (an UPDATE here would be overwritten)."""
    now = timezone.now()
    seen: set[tuple[str, str, str]] = set()
    with connection.cursor() as cursor:
        for statement in order_phase_ids_sql():
            cursor.execute(statement)
        for kind, entity, table, column, target_table, target_column in ORPHAN_CHECKS:
            cursor.execute(orphan_summary_sql(table, column, target_table, target_column))
            distinct, matched, orphan_rows, sample, _rows = cursor.fetchone()
            sheet = entity.split(".")[0]
            if sheet in sheet_runs and orphan_rows:
                sheet_runs[sheet].orphans = int(orphan_rows)
            if not distinct or matched == distinct:
                continue
            rate = matched / distinct
            key = (kind, entity, "*")
            seen.add(key)
            _upsert_issue(
                run, now, key, row_count=orphan_rows, measured=rate, sample=list(sample),
                detail=f"{distinct - matched:,} of {distinct:,} distinct values of {entity} match no {target_table.split('_', 1)[1]} "
                f"(match rate {rate:.1%}); {orphan_rows:,} rows are stored anyway.",
            )
            if entity in PER_KEY_ENTITIES:
                cursor.execute(orphan_keys_sql(table, column, target_table, target_column))
                for value, count in cursor.fetchall():
                    key = (kind, entity, str(value))
                    seen.add(key)
                    _upsert_issue(run, now, key, row_count=count, measured=None, sample=[],
                                  detail=f"{count:,} rows of {entity} name {value}, which is not in the catalogue.")
    closing = DataQualityIssue.objects.filter(status=IssueStatus.OPEN)
    for issue in closing.only("id", "kind", "entity", "key"):
        if (issue.kind, issue.entity, issue.key) not in seen:
            DataQualityIssue.objects.filter(pk=issue.pk).update(status=IssueStatus.CLOSED, closed_at=now, last_seen_run=run)


def _upsert_issue(run, now, key, *, row_count, measured, sample, detail) -> None:
    kind, entity, value = key
    issue, created = DataQualityIssue.objects.get_or_create(
        kind=kind, entity=entity, key=value,
        defaults={"first_seen_run": run, "last_seen_run": run, "row_count": row_count, "measured": measured, "sample": sample, "detail": detail},
    )
    if not created:
        issue.last_seen_run = run
        issue.row_count, issue.measured, issue.sample, issue.detail = row_count, measured, sample, detail
        issue.status, issue.closed_at = IssueStatus.OPEN, None
        issue.save()


def ingestion_run_attach_profile(*, run_id: int) -> None:
    """The inspector's profile of the run's file, stored on the run for stewards (never blocks the data)."""
    run = IngestionRun.objects.get(pk=run_id)
    _attach_profile(run, Path(run.file_path))


def _attach_profile(run: IngestionRun, path: Path) -> None:
    try:
        run.profile = profile_workbook(path)
        IngestionRun.objects.filter(pk=run.pk).update(profile=run.profile)
    except Exception:  # noqa: BLE001 - a profile failure must not fail a committed run
        logger.exception("profiling failed", extra={"run_id": run.pk})


def _quote(name: str) -> str:
    return '"' + name + '"'


# --------------------------------------------------------------------------------------------------
# Steward triage


def _steward(user):
    """The user to record as triaging (None for anonymous or system callers)."""
    return user if getattr(user, "pk", None) else None


def _resolve(reject: Reject, *, user, how: str) -> None:
    """Mark a reject resolved because its row is now stored (the caller saves it)."""
    reject.status, reject.triaged_at, reject.triaged_by = TriageStatus.RESOLVED, timezone.now(), _steward(user)
    reject.message = f"{reject.message} — resolved: {how}"


def rejects_set_status(*, reject_ids: list[int], status: str, user=None) -> int:
    """Acknowledge or ignore rejects; returns how many changed."""
    if status not in (TriageStatus.ACKNOWLEDGED, TriageStatus.IGNORED, TriageStatus.OPEN):
        raise ValueError(f"unknown triage status {status!r}")
    return (
        Reject.objects.filter(pk__in=reject_ids)
        .exclude(status=status)
        .update(status=status, triaged_at=timezone.now(), triaged_by=_steward(user))
    )


# After a sheet's own headers: where the row came from and why it failed; _reject_id brings a fixed row back.
EXPORT_EXTRA_COLUMNS = ("_excel_row", "_reason", "_message", "_reject_id")


class CorrectionsRejected(Exception):
    """The corrections file cannot be imported at all (not a workbook, a sheet or header missing); nothing changed."""


def rejects_export_xlsx(*, reject_ids: list[int], stream) -> int:
    """Write the rejects to an .xlsx, one sheet per workbook sheet with its original headers (+ row, reason, id).

    The steward fixes the cells in Excel and imports the file back (rejects_import_corrections)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    count = 0
    rejects = Reject.objects.filter(pk__in=reject_ids).order_by("sheet", "run_id", "row_number")
    sheets: dict[str, object] = {}
    for reject in rejects.iterator():
        spec = SHEETS_BY_NAME.get(reject.sheet)
        headers = spec.headers if spec else sorted(reject.original)
        if reject.sheet not in sheets:
            sheets[reject.sheet] = workbook.create_sheet(reject.sheet[:31])
            sheets[reject.sheet].append(safe_row(sheets[reject.sheet], [*headers, *EXPORT_EXTRA_COLUMNS]))
        values = reject.corrected or reject.original  # a row already corrected once goes out as corrected
        sheets[reject.sheet].append(safe_row(sheets[reject.sheet], [values.get(h) for h in headers]
                                             + [reject.row_number, reject.reason, reject.message, reject.pk]))
        count += 1
    workbook.save(stream)
    return count


def rejects_revalidate(*, reject_ids: list[int], user=None) -> dict:
    """Re-check rejects against the current data; rows that now pass are stored and marked resolved."""
    resolved = still = 0
    with transaction.atomic():
        for reject in Reject.objects.select_for_update().filter(pk__in=reject_ids).exclude(status=TriageStatus.RESOLVED):
            spec = SHEETS_BY_NAME.get(reject.sheet)
            if spec is None:
                still += 1
                continue
            reason = _store_if_valid(spec, reject.original, reject.row_number)
            if reason is None:
                _resolve(reject, user=user, how="stored after re-validation")
                reject.save()
                resolved += 1
            else:
                still += 1
        if resolved:
            bump_data_version()
    return {"resolved": resolved, "still_rejected": still}


def rejects_import_corrections(*, stream, user=None) -> dict:
    """Import a rejects export the steward fixed in Excel: each row whose corrected cells now pass is stored
    and its reject resolved; the others keep their status, with the corrected values and the new reason.

    One transaction: a file that cannot be read, or a sheet without its headers, changes nothing
    (CorrectionsRejected). Returns counts and, per row that still fails or was skipped, why."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises several types for a file that is not a workbook
        raise CorrectionsRejected(f"not an .xlsx workbook: {type(exc).__name__}: {exc}") from exc
    resolved, still, skipped = 0, [], []
    with transaction.atomic():
        for sheet in workbook.worksheets:
            spec = SHEETS_BY_NAME.get(sheet.title.strip())
            if spec is None:
                raise CorrectionsRejected(f"sheet {sheet.title!r} is not a sheet of the workbook contract")
            rows = sheet.iter_rows(values_only=True)
            headers = [normalise_header(h) for h in next(rows, ())]
            absent = [h for h in (*spec.headers, "_reject_id") if h not in headers]
            if absent:
                raise CorrectionsRejected(f"sheet {spec.name}: missing header(s) {', '.join(absent)}")
            at = {h: headers.index(h) for h in (*spec.headers, "_reject_id")}
            fixed = []  # (file row, reject id, cells)
            for excel_row, row in enumerate(rows, start=2):
                if not any(cell is not None and cell != "" for cell in row):
                    continue
                row = list(row) + [None] * (len(headers) - len(row))
                try:
                    reject_id = coerce_id(row[at["_reject_id"]])
                except CellError:
                    reject_id = None
                fixed.append((excel_row, reject_id, row))
            # One locking read for the sheet's rejects, not one per row.
            known = Reject.objects.select_for_update().filter(sheet=spec.name).in_bulk([i for _, i, _ in fixed if i])
            for excel_row, reject_id, row in fixed:
                reject = known.get(reject_id)
                if reject is None or reject.status == TriageStatus.RESOLVED:
                    why = "no such reject of this sheet" if reject is None else "already resolved"
                    skipped.append({"sheet": spec.name, "file_row": excel_row, "reject_id": reject_id, "why": why})
                    continue
                reject.corrected = {h: jsonable(row[at[h]]) for h in spec.headers}
                reason = _store_if_valid(spec, reject.corrected, reject.row_number)
                if reason is None:
                    _resolve(reject, user=user, how="corrected values imported and stored")
                    resolved += 1
                else:
                    still.append({"sheet": spec.name, "file_row": excel_row, "reject_id": reject.pk, "reason": reason})
                reject.save()
        if resolved:
            bump_data_version()
    return {"resolved": resolved, "still_rejected": still, "skipped": skipped}


def _store_if_valid(spec: SheetSpec, cells: dict, row_number: int) -> str | None:
    """Coerce and validate one row (cells by header) exactly as the pipeline would; store it if it passes.
    Returns None when stored, else the reject reason."""
    values = []
    for header, kind in spec.columns.items():
        coercer = COERCERS.get(kind)
        try:
            values.append(coercer(cells.get(header)) if coercer else coerce_text(cells.get(header), header))
        except CellError as exc:
            return exc.reason
    target = TARGETS[spec.name]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staging_table(spec)}")
        cursor.execute(staging_ddl(spec).replace(" ON COMMIT DROP", ""))
        columns = copy_columns(spec)
        record = [row_number, None, None, None, None, *values]
        if not spec.key:
            record.append(hashlib.sha256(repr(values).encode()).hexdigest())
        placeholders = ", ".join(["%s"] * len(record))
        cursor.execute(
            f"INSERT INTO {staging_table(spec)} ({', '.join(_quote(c) for c in columns)}) VALUES ({placeholders})", record
        )
        for statement in validation_sql(spec):
            cursor.execute(statement)
        cursor.execute(f"SELECT _reject FROM {staging_table(spec)}")
        reason = cursor.fetchone()[0]
        if reason is None and spec.key:
            # A key already stored means the row is still a duplicate of the stored one.
            key_match = " AND ".join(f"t.{c} = s.{_quote(h)}" for c, h in zip(TARGETS[spec.name].key, spec.key, strict=False)
                                     if c != "event_time")
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {target.table} t, {staging_table(spec)} s WHERE {key_match})")
            if cursor.fetchone()[0]:
                reason = RejectReason.DUPLICATE_KEY
        if reason is None and not spec.key:
            cursor.execute(
                "UPDATE stg_ordemfabricoerros s SET _occurrence = 1 + (SELECT count(*) FROM quality_qualityerror q "
                "WHERE q.order_id = s.\"Erro_OfId\" AND q.content_hash = s._hash)"
            )
        if reason is None:
            if spec.name == "FasesOrdemFabrico":
                _ensure_partitions(cursor)
            cursor.execute(upsert_sql(spec))
        cursor.execute(f"DROP TABLE {staging_table(spec)}")
    return reason
