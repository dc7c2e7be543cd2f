"""Derive: which sheets are unchanged, and the cross-sheet derived columns recomputed for them; the data's as-of."""

from __future__ import annotations

import time

from django.db import connection

from ingestion.contract import SHEETS, SheetSpec
from ingestion.models import IngestionRun, SheetRun
from ingestion.pipeline.progress import log_step
from ingestion.pipeline.sql import (
    apply_phase_event_times_sql,
    derive_error_event_times_sql,
    derive_phase_event_times_sql,
    local_setting,
)
from orders.partitioning import ensure_order_phase_partitions

# Derived columns cross sheets: an order's creation dates its phases' event time, and phases date
# errors. A changed sheet does not re-load an unchanged sheet deriving from it: the dependent's derived
# columns are recomputed set-wise, for the rows that refer to a touched order or phase (sql.TOUCHED).
DERIVED_FROM = {"OrdensFabrico": ("FasesOrdemFabrico", "OrdemFabricoErros"), "FasesOrdemFabrico": ("OrdemFabricoErros",)}


def unchanged_sheets(current: dict[str, str], previous: dict[str, str]) -> set[str]:
    """Sheets whose content hash equals the last successful run's (not re-read; see DERIVED_FROM)."""
    return {name for name, digest in current.items() if digest and previous.get(name) == digest}


def derivation_plan(skip: set[str]) -> tuple[set[str], set[str]]:
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


def derive_sheet(run: IngestionRun, cursor, spec: SheetSpec, sheet_run: SheetRun, timings: dict, *, record_touched: bool) -> None:
    """Recompute the cross-sheet derived columns of an unchanged (not re-read) sheet, for the rows that
    refer to an order or order phase touched by this run; counted as the sheet's updated rows."""
    step = time.perf_counter()
    # The partitioned parents carry no statistics (ANALYZE never runs on them by itself), so the planner
    # may sort half a million phases for a merge join to look up a few hundred: hash joins stay linear.
    with local_setting(cursor, "enable_mergejoin", "off"):
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
    log_step(run, "derived", sheet=spec.name, updated=sheet_run.updated, seconds=sheet_run.seconds)


def data_as_of():
    """The snapshot time: the latest real timestamp in the data (phase starts/ends, order creation/finish)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT greatest((SELECT max(started_at) FROM orders_orderphase), (SELECT max(ended_at) FROM orders_orderphase), "
            "(SELECT max(created_at) FROM orders_manufacturingorder), (SELECT max(finished_at) FROM orders_manufacturingorder))"
        )
        return cursor.fetchone()[0]
