"""A 9 KB workbook with one cell at XFD200000 made calamine allocate 100 GB and killed the ingesting process (#17, 3):
every sheet's extent is checked before calamine reads it, and a run whose process died is failed by the heartbeat."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ingestion.models import IngestionRun
from ingestion.reader import MAX_COLUMNS_PER_SHEET, WorkbookError, check_container
from ingestion.services import ingest_workbook, runs_fail_dead
from tests.ingestion.builders import write_workbook


def _with_far_cell(tmp_path: Path, cell: str, *, drop_dimension: bool = False) -> Path:
    path = write_workbook(tmp_path / "base.xlsx")
    book = load_workbook(path)
    book["OrdensFabrico"][cell] = 1
    far = tmp_path / f"far_{cell}.xlsx"
    book.save(far)
    if not drop_dimension:
        return far
    stripped = tmp_path / f"far_{cell}_nodim.xlsx"
    with zipfile.ZipFile(far) as source, zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = re.sub(rb"<dimension ref=\"[^\"]*\"/>", b"", data)
            target.writestr(info, data)
    return stripped


def test_a_cell_at_xfd200000_is_refused_before_calamine_reads_the_file(tmp_path):
    far = _with_far_cell(tmp_path, "XFD200000")
    assert far.stat().st_size < 20_000
    with pytest.raises(WorkbookError, match="16,384 columns"):
        check_container(far)


def test_a_lying_or_missing_dimension_tag_does_not_hide_a_far_cell(tmp_path):
    far = _with_far_cell(tmp_path, "XFD20", drop_dimension=True)
    with pytest.raises(WorkbookError, match="XFD20"):
        check_container(far)
    near_limit = _with_far_cell(tmp_path, "IV3", drop_dimension=True)  # column 256: allowed
    check_container(near_limit)
    with pytest.raises(WorkbookError, match=f"beyond column {MAX_COLUMNS_PER_SHEET}"):
        check_container(_with_far_cell(tmp_path, "IW3", drop_dimension=True))


def test_the_run_fails_with_the_reason_and_changes_nothing(tmp_path, empty_tables):
    run = ingest_workbook(path=str(_with_far_cell(tmp_path, "XFD200000")))
    assert run.status == "failed" and "columns" in run.error
    from orders.models import ManufacturingOrder

    assert ManufacturingOrder.objects.count() == 0


def test_a_run_left_running_by_a_dead_process_is_failed_by_the_heartbeat(empty_tables, keyed_client):
    dead = IngestionRun.objects.create(file_name="killed.xlsx", status="running")
    status = keyed_client.get(f"/api/ingestion/status/{dead.pk}").json()
    assert status["status"] == "failed" and "interrupted" in status["error"]
    assert runs_fail_dead() == 0  # nothing left to fail


@pytest.mark.django_db(transaction=True)
def test_the_worker_ingests_in_a_child_process_whose_death_fails_the_run(tmp_path, monkeypatch):
    """The child sees the committed run (transactional test), ingests it, and a child that cannot get its memory
    fails the run with how it died while this process (the worker) carries on."""
    from ingestion.isolation import ingest_run_in_child
    from tests.ingestion.test_reliability import _database_url

    monkeypatch.setenv("DATABASE_URL", _database_url())  # the child connects to the test database
    monkeypatch.delenv("REDIS_URL", raising=False)
    good = write_workbook(tmp_path / "good.xlsx")
    # allow_shrink: the session's ingested fixture may have committed a bigger workbook before this test
    run = IngestionRun.objects.create(file_name="good.xlsx", file_path=str(good), status="pending", allow_shrink=True)
    done = ingest_run_in_child(run_id=run.pk)
    assert done.status == "succeeded", done.error

    starved = IngestionRun.objects.create(file_name="starved.xlsx", file_path=str(good), status="pending")
    failed = ingest_run_in_child(run_id=starved.pk, memory_limit_mb=64)
    assert failed.status == "failed" and "the ingesting process" in failed.error and "memory limit 64 MB" in failed.error
    assert failed.finished_at is not None
