"""The generated workbook, ingested: stored counts and planted rejects match its manifest exactly."""

from __future__ import annotations

import pytest
from django.db import connection

from ingestion.models import IngestionRun, Reject, SheetRun
from ingestion.pipeline.sql import TARGETS
from ingestion.services import ingest_workbook

pytestmark = pytest.mark.django_db


def _stored(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def test_stored_counts_equal_rows_minus_planted_rejects(ingested):
    manifest = ingested["manifest"]
    for sheet, facts in manifest["sheets"].items():
        planted = sum(len(rows) for rows in facts.get("planted_rejects", {}).values())
        assert _stored(TARGETS[sheet].table) == facts["rows"] - planted, sheet
        sheet_run = SheetRun.objects.get(run_id=ingested["run_id"], sheet=sheet)
        assert (sheet_run.rows_read, sheet_run.rows_rejected, sheet_run.reconciled) == (facts["rows"], planted, True)


def test_every_planted_reject_has_its_reason_and_row(ingested):
    manifest = ingested["manifest"]
    expected = {
        (sheet, row, reason)
        for sheet, facts in manifest["sheets"].items()
        for reason, rows in facts.get("planted_rejects", {}).items()
        for row in rows
    }
    found = set(Reject.objects.filter(run_id=ingested["run_id"]).values_list("sheet", "row_number", "reason"))
    assert found == expected


def test_as_of_is_the_latest_timestamp_of_the_snapshot(ingested):
    run = IngestionRun.objects.get(pk=ingested["run_id"])
    assert run.as_of.date().isoformat() <= manifest_as_of(ingested)
    assert run.profile.get("relationships"), "the inspector's profile is stored on the run"


def manifest_as_of(ingested) -> str:
    return ingested["manifest"]["as_of"][:10]


def test_reingesting_the_same_content_changes_and_duplicates_nothing(ingested):
    with connection.cursor() as cursor:
        counts_before = {sheet: _stored(target.table) for sheet, target in TARGETS.items()}
        cursor.execute("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM quality_qualityerror t")
        errors_before = cursor.fetchone()[0]
    noop = ingest_workbook(path=str(ingested["path"]))
    assert noop.status == "noop"
    again = ingest_workbook(path=str(ingested["path"]), force=True)
    assert again.status == "succeeded", again.error
    for sheet_run in again.sheets.all():
        assert (sheet_run.inserted, sheet_run.updated, sheet_run.deleted) == (0, 0, 0), sheet_run.sheet
        assert sheet_run.unchanged == sheet_run.rows_loaded
    assert {sheet: _stored(target.table) for sheet, target in TARGETS.items()} == counts_before
    with connection.cursor() as cursor:
        cursor.execute("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM quality_qualityerror t")
        assert cursor.fetchone()[0] == errors_before
