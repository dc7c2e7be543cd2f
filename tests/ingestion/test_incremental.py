"""Ingestion speed paths: cache warm-ups only where they help, incremental merges and derived-column refreshes."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.core.management import call_command
from django.db import connection

from ingestion.services import cache_warmups_useful, ingest_workbook
from tests.ingestion.builders import base_rows, write_workbook

pytestmark = pytest.mark.django_db

WARM_TASKS = {"orders.warm_cache", "quality.warm_cache", "inventory.warm_cache"}


def _warm_callbacks(callbacks) -> set[str]:
    return {getattr(getattr(cb, "__self__", None), "name", "") for cb in callbacks} & WARM_TASKS


LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "warm-up-test"}}


def test_warmups_useless_only_for_a_short_lived_eager_process_with_a_local_cache(settings):
    settings.CACHES = LOCAL_CACHE  # the test settings run Celery eagerly; CI's cache is Redis
    assert not cache_warmups_useful(process_exits=True)
    assert cache_warmups_useful(process_exits=False)  # ingestion inside the serving process fills its own cache
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/15"}}
    assert cache_warmups_useful(process_exits=True)  # shared cache: the worker's warm-up serves the API


def test_ingestion_queues_warmups_unless_told_not_to(empty_tables, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False)
    assert run.status == "succeeded" and _warm_callbacks(callbacks) == WARM_TASKS
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False, force=True, warm_caches=False)
    assert run.status == "succeeded" and _warm_callbacks(callbacks) == set()


def test_cli_skips_warmups_into_its_own_dying_cache(empty_tables, tmp_path, django_capture_on_commit_callbacks, settings):
    settings.CACHES = LOCAL_CACHE
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("ingest", str(write_workbook(tmp_path / "a.xlsx")), "--no-profile")
    assert _warm_callbacks(callbacks) == set()


def _locations(table: str) -> dict:
    """Each stored row's physical location: an UPDATE (or a re-insert) moves it, an untouched row keeps it."""
    key = {"orders_orderphase": "id", "quality_qualityerror": "(order_id, content_hash, occurrence)"}.get(table, "id")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {key}::text, tableoid::regclass::text || ctid::text FROM {table}")
        return dict(cursor.fetchall())


def test_incremental_merge_writes_only_changed_rows_and_counts_them(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False)
    before = _locations("orders_orderphase")
    rows = base_rows()
    rows["FasesOrdemFabrico"][0][10] = 2  # phase 5000: another shift (same partition)
    rows["FasesOrdemFabrico"][2][3] = datetime(2024, 5, 3, 12)  # phase 5002 ends months later: moves to a new partition
    del rows["FasesOrdemFabrico"][1]  # phase 5001 vanishes
    rows["FasesOrdemFabrico"].append([5010, 1002, datetime(2024, 3, 2, 8), None, None, 1, 0, 1, 12, 0, 1, 2])  # new
    run = ingest_workbook(path=str(write_workbook(tmp_path / "b.xlsx", rows)), allow_shrink=True, profile=False)
    assert run.status == "succeeded", run.error
    phases = run.sheets.get(sheet="FasesOrdemFabrico")
    assert (phases.inserted, phases.updated, phases.unchanged, phases.deleted) == (1, 2, 1, 1)
    after = _locations("orders_orderphase")
    assert set(after) == {"5000", "5002", "5003", "5010"}
    assert after["5003"] == before["5003"]  # the unchanged row was not rewritten, nor even locked:
    with connection.cursor() as cursor:  # (ON CONFLICT DO UPDATE … WHERE changed would have locked it: xmax set)
        cursor.execute("SELECT xmax::text FROM orders_orderphase WHERE id = 5003")
        assert cursor.fetchone()[0] == "0"
    assert after["5000"] != before["5000"] and after["5002"] != before["5002"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, shift, event_time, is_open, is_done, duration_seconds FROM orders_orderphase ORDER BY id")
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
    assert stored[5000][0] == 2
    assert stored[5002][1].month == 5 and stored[5002][2:4] == (False, True) and stored[5002][4] > 0
    assert after["5002"].startswith("orders_orderphase_2024_may")  # its month's partition was created, not the default
    assert stored[5010][2] is True  # started, not ended: open

    # The same file again, forced through the pipeline: every row compares equal, nothing is written.
    before = {table: _locations(table) for table in ("orders_orderphase", "orders_manufacturingorder", "quality_qualityerror")}
    again = ingest_workbook(path=str(tmp_path / "b.xlsx"), force=True, profile=False)
    assert again.status == "succeeded", again.error
    for sheet in again.sheets.all():
        assert (sheet.inserted, sheet.updated, sheet.deleted) == (0, 0, 0), sheet.sheet
        assert sheet.unchanged == sheet.rows_loaded
    assert {table: _locations(table) for table in before} == before


def test_derivation_plan_follows_the_load_order():
    from ingestion.contract import SHEETS
    from ingestion.pipeline.derive import derivation_plan

    every = {spec.name for spec in SHEETS}
    assert derivation_plan(set()) == (set(), set())  # nothing skipped: everything is merged
    assert derivation_plan(every) == (set(), set())  # nothing changed: nothing to derive
    # only phases changed: errors are re-derived from the phases it touched
    assert derivation_plan(every - {"FasesOrdemFabrico"}) == ({"OrdemFabricoErros"}, {"FasesOrdemFabrico"})
    # only orders changed: phases re-derived from the orders, errors from both
    assert derivation_plan(every - {"OrdensFabrico"}) == (
        {"FasesOrdemFabrico", "OrdemFabricoErros"}, {"OrdensFabrico", "FasesOrdemFabrico"})
    # orders and errors changed: errors are merged (reading the new orders), phases re-derived
    assert derivation_plan(every - {"OrdensFabrico", "OrdemFabricoErros"}) == ({"FasesOrdemFabrico"}, {"OrdensFabrico"})
    # only assignments changed: nothing derives from them
    assert derivation_plan(every - {"FuncionariosFaseOrdemFabrico"}) == (set(), set())


def _event_times() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'phase ' || id, event_time FROM orders_orderphase "
                       "UNION ALL SELECT 'error ' || description || ' ' || occurrence, event_time FROM quality_qualityerror")
        return dict(cursor.fetchall())


def _assert_same_as_a_full_reload(path) -> None:
    """A forced run re-reads and re-merges every sheet: it must find every stored row (derived columns included) equal."""
    forced = ingest_workbook(path=str(path), force=True, profile=False, allow_shrink=True)
    assert forced.status == "succeeded", forced.error
    assert {s.sheet: (s.inserted, s.updated, s.deleted) for s in forced.sheets.all() if (s.inserted, s.updated, s.deleted) != (0, 0, 0)} == {}


def _rows_with_derivations() -> dict:
    rows = base_rows()
    # errors on order 1002: found at its date-less phase 5003; and one referring to no phase at all
    rows["OrdemFabricoErros"] += [["poro", 1002, 1, 1, 5003, None], ["mancha", 1002, 1, 2, None, None]]
    return rows


def test_changed_phases_rederive_error_times_without_rereading_errors(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx", _rows_with_derivations())), profile=False)
    rows = _rows_with_derivations()
    rows["FasesOrdemFabrico"][1][3] = datetime(2024, 1, 6, 9)  # phase 5001 (where errors were found) ends a day later
    path = write_workbook(tmp_path / "b.xlsx", rows)
    run = ingest_workbook(path=str(path), profile=False)
    assert run.status == "succeeded", run.error
    sheets = {s.sheet: s for s in run.sheets.all()}
    assert {name for name, s in sheets.items() if not s.skipped} == {"FasesOrdemFabrico"}
    assert sheets["FasesOrdemFabrico"].updated == 1
    errors = sheets["OrdemFabricoErros"]
    assert errors.rows_read == 0 and errors.updated == 3  # the three errors found at phase 5001
    times = _event_times()
    assert times["error risco 1"] == times["error bolha 1"] == times["phase 5001"] and times["phase 5001"].day == 6
    _assert_same_as_a_full_reload(path)


def test_changed_orders_rederive_phase_and_error_times(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx", _rows_with_derivations())), profile=False)
    rows = _rows_with_derivations()
    rows["OrdensFabrico"][2][1] = datetime(2024, 4, 2, 8)  # order 1002 created a month later: its date-less phase moves
    path = write_workbook(tmp_path / "b.xlsx", rows)
    run = ingest_workbook(path=str(path), profile=False)
    assert run.status == "succeeded", run.error
    sheets = {s.sheet: s for s in run.sheets.all()}
    assert {name for name, s in sheets.items() if not s.skipped} == {"OrdensFabrico"}
    assert (sheets["FasesOrdemFabrico"].updated, sheets["OrdemFabricoErros"].updated) == (1, 2)
    times = _event_times()
    assert times["phase 5003"].month == 4 and times["error poro 1"] == times["phase 5003"]  # via the phase
    assert times["error mancha 1"] == times["phase 5003"]  # no phase: the order's creation
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM orders_orderphase WHERE id = 5003")
        assert cursor.fetchone()[0].endswith("2024_apr")
    _assert_same_as_a_full_reload(path)


def test_vanished_order_rederives_and_is_reported_as_an_orphan(empty_tables, tmp_path):
    from ingestion.models import DataQualityIssue

    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx", _rows_with_derivations())), profile=False)
    rows = _rows_with_derivations()
    del rows["OrdensFabrico"][2]  # order 1002 vanishes: its phase falls back to the planned date, its errors follow
    path = write_workbook(tmp_path / "b.xlsx", rows)
    run = ingest_workbook(path=str(path), profile=False, allow_shrink=True)
    assert run.status == "succeeded", run.error
    sheets = {s.sheet: s for s in run.sheets.all()}
    assert sheets["OrdensFabrico"].deleted == 1 and sheets["FasesOrdemFabrico"].skipped
    times = _event_times()
    assert (times["phase 5003"].month, times["phase 5003"].day) == (3, 10)  # FaseOf_DataPrevista
    assert times["error poro 1"] == times["phase 5003"] and times["error mancha 1"] is None
    # orphan checks read the stored rows: the skipped sheets' orphans are counted and reported
    assert sheets["FasesOrdemFabrico"].orphans == 1 and sheets["OrdemFabricoErros"].orphans >= 2
    issue = DataQualityIssue.objects.get(kind="orphan_order", entity="FasesOrdemFabrico.FaseOf_OfId")
    assert issue.status == "open" and issue.sample == [1002]
    _assert_same_as_a_full_reload(path)


def _index_definitions() -> list[tuple[str, str, str]]:
    """Every index of the loaded tables and of their partitions: (table, index definition, valid)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, pg_get_indexdef(i.indexrelid), i.indisvalid::text FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname ~ '^(orders_orderphase|orders_phaseassignment|quality_qualityerror)' ORDER BY 1, 2"
        )
        return cursor.fetchall()


def test_big_first_load_rebuilds_the_plain_indexes_it_dropped(empty_tables, tmp_path, monkeypatch):
    from ingestion.pipeline import merge

    parents = ("orders_orderphase", "orders_phaseassignment", "quality_qualityerror")
    before = [row for row in _index_definitions() if row[0] in parents]
    assert any("orders_op_phase_event_idx" in definition for _, definition, _ in before)
    monkeypatch.setattr(merge, "BULK_INDEX_ROWS", 1)  # every table of the small workbook counts as big
    run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False)
    assert run.status == "succeeded", run.error
    assert run.sheets.get(sheet="FasesOrdemFabrico").inserted == 4
    after = _index_definitions()
    assert [row for row in after if row[0] in parents] == before  # the same parent indexes, by name and definition
    per_table: dict[str, int] = {}
    for table, _, valid in after:
        assert valid == "true"
        per_table[table] = per_table.get(table, 0) + 1
    for table, count in per_table.items():  # every partition carries a copy of each of its parent's indexes
        parent = next(p for p in parents if table.startswith(p))
        assert count == per_table[parent], table
