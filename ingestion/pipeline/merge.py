"""Merge: the shrink guard, then each changed sheet upserted into its domain table in load order."""

from __future__ import annotations

import contextlib
import time

from django.conf import settings
from django.db import connection

from ingestion.contract import LOCAL_ZONE, SHEETS, SheetSpec
from ingestion.models import IngestionRun, SheetRun
from ingestion.pipeline.derive import derivation_plan, derive_sheet
from ingestion.pipeline.errors import ShrinkRefused
from ingestion.pipeline.faults import fault_point
from ingestion.pipeline.progress import Progress, log_step
from ingestion.pipeline.sql import (
    TARGETS,
    TOUCHED,
    apply_changed_sql,
    changed_rows_sql,
    changed_table,
    delete_vanished_sql,
    local_setting,
    recreate_index_sql,
    secondary_indexes_sql,
    target_types_sql,
    touched_ddl,
    touched_from_changes_sql,
    touched_from_load_sql,
    upsert_sql,
    vanished_count_sql,
)
from orders.partitioning import ensure_order_phase_partitions

BULK_INDEX_ROWS = 50_000  # a first load at least this big builds its table's plain indexes after the INSERT


def merge_all(run: IngestionRun, sheet_runs: dict[str, SheetRun], progress: Progress, timings: dict, skip: set[str]) -> None:
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
        derive, touch = derivation_plan(skip)
        if touch:
            for statement in touched_ddl():
                cursor.execute(statement)
        for spec in SHEETS:
            if spec.name in derive:
                derive_sheet(run, cursor, spec, sheet_runs[spec.name], timings, record_touched=spec.name in touch)
            if spec.name in skip:
                continue
            step = time.perf_counter()
            sheet_run = sheet_runs[spec.name]
            into = TOUCHED[spec.name] if spec.name in touch else None
            if stored_rows[spec.name] == 0:
                # A first load: a plain INSERT of every valid row; a big one builds the plain indexes afterwards.
                if spec.name == "FasesOrdemFabrico":
                    ensure_partitions(cursor)
                with indexes_built_after(cursor, TARGETS[spec.name].table, big=sheet_run.rows_loaded >= BULK_INDEX_ROWS):
                    cursor.execute(upsert_sql(spec, empty_target=True))
                    sheet_run.inserted, sheet_run.updated = cursor.fetchone()[0], 0
                if into:
                    cursor.execute(touched_from_load_sql(spec))
            else:
                sheet_run.inserted, sheet_run.updated = merge_changed(cursor, spec)
                if into:
                    cursor.execute(touched_from_changes_sql(spec))
                if sheet_run.deleted:  # counted exactly by the shrink guard above; nothing to delete otherwise
                    cursor.execute(delete_vanished_sql(spec, touched=into))
                    sheet_run.deleted = cursor.rowcount
            fault_point(f"merge:{spec.name}")
            sheet_run.unchanged = sheet_run.rows_loaded - sheet_run.inserted - sheet_run.updated
            sheet_run.seconds = round(sheet_run.seconds + time.perf_counter() - step, 3)
            timings[f"merge:{spec.name}"] = round(time.perf_counter() - step, 3)
            progress.update(spec.name, sheet_run.rows_read, sheet_run.rows_read, time.perf_counter() - 1, stage="merged")
            log_step(
                run, "merged", sheet=spec.name, inserted=sheet_run.inserted, updated=sheet_run.updated,
                unchanged=sheet_run.unchanged, deleted=sheet_run.deleted, seconds=timings[f"merge:{spec.name}"],
            )


@contextlib.contextmanager
def indexes_built_after(cursor, table: str, *, big: bool):
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
    with local_setting(cursor, "maintenance_work_mem", "256MB"):
        for _, definition in indexes:
            cursor.execute(recreate_index_sql(definition))


def merge_changed(cursor, spec: SheetSpec) -> tuple[int, int]:
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


def ensure_partitions(cursor) -> None:
    """Create the order-phase partitions the staged phase rows need (their event times read in the contract's zone)."""
    cursor.execute(
        "SELECT min(t), max(t) FROM (SELECT coalesce(s.\"FaseOf_Fim\", s.\"FaseOf_Inicio\", o.created_at AT TIME ZONE %s, "
        "s.\"FaseOf_DataPrevista\") AT TIME ZONE %s AS t "
        "FROM stg_fasesordemfabrico s LEFT JOIN orders_manufacturingorder o ON o.id = s.\"FaseOf_OfId\" WHERE s._reject IS NULL) x",
        [LOCAL_ZONE, LOCAL_ZONE],
    )
    first, last = cursor.fetchone()
    if first is not None:
        ensure_order_phase_partitions(first, last)
