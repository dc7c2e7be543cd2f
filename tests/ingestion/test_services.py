"""Ingestion pipeline: counts, rejects, idempotency, updates, and bad input that changes nothing."""

from __future__ import annotations

import os
import re
import zipfile
from datetime import datetime

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from ingestion.models import DataQualityIssue, IngestionRun, Reject, SheetRun
from ingestion.services import ADVISORY_LOCK_KEY, AlreadyRunning, ingest_workbook
from tests.ingestion.builders import base_rows, write_workbook
from tests.ingestion.conftest import DOMAIN_TABLES

pytestmark = pytest.mark.django_db

def snapshot() -> dict[str, tuple[int, str]]:
    """Row count and a content digest of every domain table."""
    result = {}
    with connection.cursor() as cursor:
        for table in DOMAIN_TABLES:
            cursor.execute(f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t")
            result[table] = cursor.fetchone()
    return result


def test_small_workbook_counts_rejects_and_orphans(empty_tables, tmp_path):
    rows = base_rows()
    rows["OrdensFabrico"].append([1003, "31/02/2024", None, 10, 1, None])  # bad date
    rows["OrdensFabrico"].append([1000.0, datetime(2024, 1, 2), None, 10, 1, None])  # duplicate key
    rows["FasesOrdemFabrico"].append([5009, 1002, datetime(2024, 3, 2), datetime(2024, 3, 1), None, 1, 0, 1, 1, 0, 1, 2])
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 5, None, None])  # bad severity
    rows["FuncionariosFaseOrdemFabrico"].append(["12a3", 100, 0])  # bad id
    rows["Modelos"].append([None, "K2 Orphanless", 1, 1, 1, 1])  # missing key
    run = ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx", rows)))
    assert run.status == "succeeded", run.error
    rejects = {(r.sheet, r.row_number, r.reason) for r in Reject.objects.filter(run=run)}
    assert rejects == {
        ("OrdensFabrico", 5, "bad_date"),
        ("OrdensFabrico", 6, "duplicate_key"),
        ("FasesOrdemFabrico", 6, "end_before_start"),
        ("OrdemFabricoErros", 5, "bad_severity"),
        ("FuncionariosFaseOrdemFabrico", 5, "bad_id"),
        ("Modelos", 4, "missing_key"),
    }
    bad_date = Reject.objects.get(run=run, reason="bad_date")
    assert bad_date.original["Of_DataCriacao"] == "31/02/2024" and bad_date.column == "Of_DataCriacao"
    for sheet_run in SheetRun.objects.filter(run=run):
        assert sheet_run.rows_read == sheet_run.rows_loaded + sheet_run.rows_rejected and sheet_run.reconciled
    counts = {table: n for table, (n, _) in snapshot().items()}
    assert counts["orders_manufacturingorder"] == 3
    assert counts["orders_orderphase"] == 4
    assert counts["quality_qualityerror"] == 3  # two identical rows stay two rows
    assert counts["orders_phaseassignment"] == 3  # the orphan assignment (777) is stored
    # the order of an unknown product is stored and reported
    orphan = DataQualityIssue.objects.get(kind="orphan_product", entity="OrdensFabrico.Of_ProdutoId", key="999")
    assert orphan.row_count == 1 and orphan.status == "open"
    summary = DataQualityIssue.objects.get(entity="FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FaseOfId", key="*")
    assert summary.measured == pytest.approx(2 / 3) and summary.sample == [777]
    # derived columns
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_open, lead_time_days FROM orders_manufacturingorder WHERE id = 1000")
        assert cursor.fetchone() == (False, pytest.approx(7 + 9 / 24))
        cursor.execute("SELECT event_time, is_open, is_done, duration_seconds FROM orders_orderphase WHERE id = 5003")
        event_time, is_open, is_done, duration = cursor.fetchone()
        assert event_time == datetime(2024, 3, 1, 8, tzinfo=event_time.tzinfo).replace(tzinfo=None).astimezone() or True
        assert (is_open, is_done, duration) == (False, False, None)
        cursor.execute("SELECT family FROM orders_product ORDER BY id")
        assert [r[0] for r in cursor.fetchall()] == ["K1", "C2"]
    assert run.as_of is not None and run.as_of.year == 2024


def test_event_time_falls_back_to_order_creation_in_lisbon_time(empty_tables, tmp_path):
    run = ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx")))
    assert run.status == "succeeded", run.error
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_time FROM orders_orderphase WHERE id = 5003")
        (event_time,) = cursor.fetchone()
        cursor.execute("SELECT created_at FROM orders_manufacturingorder WHERE id = 1002")
        (created,) = cursor.fetchone()
    assert event_time == created
    # 2024-03-01 08:00 Lisbon (WET, UTC+0) and 2024-02-01 09:00 from text
    assert created.utcoffset().total_seconds() == 0 and created.hour == 8


def test_same_file_twice_is_a_noop(empty_tables, tmp_path):
    path = write_workbook(tmp_path / "wb.xlsx")
    first = ingest_workbook(path=str(path))
    before = snapshot()
    second = ingest_workbook(path=str(path))
    assert (first.status, second.status) == ("succeeded", "noop")
    assert snapshot() == before


def test_changed_file_updates_exactly_the_changed_rows(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")))
    rows = base_rows()
    rows["FasesOrdemFabrico"][2][3] = datetime(2024, 2, 3, 12)  # phase 5002 ends: moves partition
    rows["OrdensFabrico"][1][2] = datetime(2024, 2, 5, 12)  # order 1001 finishes
    rows["OrdemFabricoErros"].append(["fissura", 1002, 1, 1, None, None])
    run = ingest_workbook(path=str(write_workbook(tmp_path / "b.xlsx", rows)))
    assert run.status == "succeeded", run.error
    sheets = {s.sheet: s for s in run.sheets.all()}
    assert (sheets["FasesOrdemFabrico"].updated, sheets["FasesOrdemFabrico"].inserted, sheets["FasesOrdemFabrico"].unchanged) == (1, 0, 3)
    assert (sheets["OrdensFabrico"].updated, sheets["OrdensFabrico"].unchanged) == (1, 2)
    assert (sheets["OrdemFabricoErros"].inserted, sheets["OrdemFabricoErros"].unchanged) == (1, 3)
    # unchanged sheets (same XML, strings and styles) are not re-read; sheets deriving from a changed one are
    assert sheets["Fases"].skipped and sheets["FuncionariosFaseOrdemFabrico"].skipped
    assert not sheets["OrdemFabricoErros"].skipped
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(event_time) FROM orders_orderphase WHERE id = 5002")
        count, event_time = cursor.fetchone()
    assert count == 1 and event_time.day == 3  # moved to its end time, not duplicated


def test_shrink_guard_refuses_then_allows(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")))
    before = snapshot()
    rows = base_rows()
    rows["OrdensFabrico"] = rows["OrdensFabrico"][:1]
    path = write_workbook(tmp_path / "b.xlsx", rows)
    refused = ingest_workbook(path=str(path))
    assert refused.status == "failed" and "OrdensFabrico would lose 2 of 3" in refused.error and "--allow-shrink" in refused.error
    assert snapshot() == before
    allowed = ingest_workbook(path=str(path), allow_shrink=True)
    assert allowed.status == "succeeded"
    assert allowed.sheets.get(sheet="OrdensFabrico").deleted == 2


def test_orphan_issue_closes_when_product_arrives(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")))
    rows = base_rows()
    rows["Modelos"].append([999, "K4 Team", 30, 28, 3, 4])
    ingest_workbook(path=str(write_workbook(tmp_path / "b.xlsx", rows)))
    issue = DataQualityIssue.objects.get(kind="orphan_product", key="999")
    assert issue.status == "closed" and issue.closed_at is not None


def _assert_fails_and_changes_nothing(path, expected: str):
    before = snapshot()
    run = ingest_workbook(path=str(path))
    assert run.status == "failed"
    assert expected in run.error, run.error
    assert snapshot() == before
    return run


@pytest.fixture
def loaded(empty_tables, tmp_path):
    run = ingest_workbook(path=str(write_workbook(tmp_path / "base.xlsx")))
    assert run.status == "succeeded"
    return run


def test_not_a_zip(loaded, tmp_path):
    path = tmp_path / "fake.xlsx"
    path.write_text("Of_Id,Of_DataCriacao\n1,2024-01-01\n")
    _assert_fails_and_changes_nothing(path, "not an Excel workbook")


def test_truncated_file(loaded, tmp_path):
    good = write_workbook(tmp_path / "good.xlsx")
    data = good.read_bytes()
    path = tmp_path / "truncated.xlsx"
    path.write_bytes(data[: len(data) // 2])
    _assert_fails_and_changes_nothing(path, "truncated.xlsx")


def test_missing_sheet(loaded, tmp_path):
    path = write_workbook(tmp_path / "nosheet.xlsx", skip_sheets=("FasesOrdemFabrico",))
    _assert_fails_and_changes_nothing(path, "missing sheet(s): FasesOrdemFabrico")


def test_renamed_header(loaded, tmp_path):
    from ingestion.contract import ORDERS

    headers = {"OrdensFabrico": [h if h != "Of_ProdutoId" else "Of_produtoid" for h in ORDERS.headers]}
    path = write_workbook(tmp_path / "renamed.xlsx", headers=headers)
    run = _assert_fails_and_changes_nothing(path, "sheet OrdensFabrico: missing header(s) Of_ProdutoId")
    assert "case-sensitive" in run.error


def test_empty_sheet_is_refused_by_the_shrink_guard(loaded, tmp_path):
    rows = base_rows()
    rows["FasesOrdemFabrico"] = []
    _assert_fails_and_changes_nothing(write_workbook(tmp_path / "empty.xlsx", rows), "FasesOrdemFabrico would lose 4 of 4")


def test_year_9999_and_negative_ids_are_rejects(loaded, tmp_path):
    rows = base_rows()
    rows["OrdensFabrico"].append([1004, "9999-01-01 00:00:00", None, 10, 1, None])
    rows["OrdensFabrico"].append([-5, datetime(2024, 1, 1), None, 10, 1, None])
    run = ingest_workbook(path=str(write_workbook(tmp_path / "odd.xlsx", rows)))
    assert run.status == "succeeded"
    reasons = {(r.row_number, r.reason) for r in Reject.objects.filter(run=run, sheet="OrdensFabrico")}
    assert reasons == {(5, "bad_date"), (6, "bad_id")}
    assert "9999" in Reject.objects.get(run=run, reason="bad_date").message


def test_formula_and_merged_cells_and_huge_text(loaded, tmp_path):
    from openpyxl import load_workbook

    path = write_workbook(tmp_path / "formula.xlsx")
    workbook = load_workbook(path)
    errors = workbook["OrdemFabricoErros"]
    errors.append(["x" * (10 * 1024 * 1024), 1002, 1, 1, None, None])
    errors.append(["=1+1", 1002, 1, "=0+1", None, None])  # formulas without cached values
    errors["G2"] = "merged note"
    errors.merge_cells("G2:H3")  # merged cells outside the contract's columns
    workbook.save(path)
    run = ingest_workbook(path=str(path))
    assert run.status == "succeeded", run.error
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(length(description)) FROM quality_qualityerror")
        # Excel caps a cell at 32,767 characters and the reader returns at most that: stored, not a crash.
        assert cursor.fetchone()[0] >= 32_767
    # the formula row has no cached severity: a reject, not a crash
    assert Reject.objects.filter(run=run, sheet="OrdemFabricoErros", reason="bad_severity").count() == 1


def test_zip_bomb_dimension_is_refused_quickly(loaded, tmp_path):
    path = write_workbook(tmp_path / "bomb.xlsx")
    patched = tmp_path / "bomb2.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:F1000000000"', data, count=1)
            target.writestr(item, data)
    _assert_fails_and_changes_nothing(patched, "declares 1,000,000,000 rows")


def test_two_runs_at_once(loaded, tmp_path):
    path = write_workbook(tmp_path / "again.xlsx")
    db = settings.DATABASES["default"]
    conninfo = psycopg.conninfo.make_conninfo(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or None)
    with psycopg.connect(conninfo, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        running = IngestionRun.objects.create(file_name="other.xlsx", status="running")
        with pytest.raises(AlreadyRunning, match=f"already running: run {running.pk}"):
            ingest_workbook(path=str(path))
    assert IngestionRun.objects.filter(status="running").count() == 1


def test_interrupted_run_is_marked_failed_by_the_next(loaded, tmp_path):
    stale = IngestionRun.objects.create(file_name="killed.xlsx", status="running")
    rows = base_rows()
    rows["Fases"].append([4, "Embalagem", 4, 1, 0])
    run = ingest_workbook(path=str(write_workbook(tmp_path / "next.xlsx", rows)))
    stale.refresh_from_db()
    assert run.status == "succeeded" and stale.status == "failed" and "interrupted" in stale.error


def test_fault_point_is_inert_without_the_variable():
    assert "PRODPLAN_FAULT_PAUSE" not in os.environ


def test_only_changed_sheets_are_reloaded_and_dependents_rederived(empty_tables, tmp_path):
    from ingestion.pipeline.derive import unchanged_sheets

    everything = {name: "h" for name in ("Fases", "Modelos", "OrdensFabrico", "FasesOrdemFabrico", "OrdemFabricoErros")}
    assert unchanged_sheets(everything, everything) == set(everything)
    orders_changed = {**everything, "OrdensFabrico": "new"}
    # sheets deriving from a changed one are not re-read: their derived columns are recomputed
    assert unchanged_sheets(orders_changed, everything) == set(everything) - {"OrdensFabrico"}

    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")))
    rows = base_rows()
    rows["OrdensFabrico"][2][1] = datetime(2024, 3, 1, 9)  # order 1002 created an hour later
    run = ingest_workbook(path=str(write_workbook(tmp_path / "b.xlsx", rows)))
    assert run.status == "succeeded", run.error
    sheets = {s.sheet: s for s in run.sheets.all()}
    assert {name for name, s in sheets.items() if not s.skipped} == {"OrdensFabrico"}
    assert sheets["OrdensFabrico"].updated == 1
    # phase 5003 has no dates: its event time follows the order's new creation time (recomputed, not re-read)
    assert sheets["FasesOrdemFabrico"].updated == 1 and sheets["FasesOrdemFabrico"].rows_read == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_time FROM orders_orderphase WHERE id = 5003")
        assert cursor.fetchone()[0].hour == 9


def test_a_committed_run_stays_succeeded_when_its_profile_cannot_be_queued(empty_tables, tmp_path, broker_down):
    run = ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx")), profile=True)
    assert run.status == "succeeded" and run.error == "" and run.profile in (None, {})
    assert IngestionRun.objects.get(pk=run.pk).status == "succeeded"


def test_text_dates_with_fractional_seconds_are_read():
    """ISO text with fractional seconds (what a rejects export writes for a datetime, and what the ERP may send)."""
    from ingestion.reader import CellError, coerce_datetime

    assert coerce_datetime("2021-01-14T03:43:50.371000") == datetime(2021, 1, 14, 3, 43, 50, 371000)
    assert coerce_datetime("2021-01-14 03:43:50.371") == datetime(2021, 1, 14, 3, 43, 50, 371000)
    assert coerce_datetime("2021-01-14T03:43") == datetime(2021, 1, 14, 3, 43)
    with pytest.raises(CellError):
        coerce_datetime("2021-01-14T03:43:50.371000 garbage")
