"""The inbox watch: a settled new workbook is ingested; a file still being written, a known one or one that
failed recently is left alone, with the reason."""

from __future__ import annotations

import os
import time

import pytest

from ingestion.models import IngestionRun
from ingestion.selectors import inbox_decision
from ingestion.tasks import ingest_inbox_task
from tests.ingestion.builders import write_workbook

pytestmark = pytest.mark.django_db


def _decide(inbox, **overrides):
    return inbox_decision(inbox=inbox, **{"now": time.time(), "settle_seconds": 30,
                                          "retry_failed_after_seconds": 3600, **overrides})


def _age(path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_a_file_still_being_written_waits_then_is_ingested_once(empty_tables, tmp_path, settings):
    settings.INBOX_DIR = tmp_path
    settings.INBOX_SETTLE_SECONDS, settings.INBOX_RETRY_FAILED_AFTER_SECONDS = 30, 3600
    assert _decide(tmp_path)["status"] == "empty inbox"
    (tmp_path / "~$Folha_IA.xlsx").write_bytes(b"lock")  # Excel's lock file of a workbook open on the share
    _age(tmp_path / "~$Folha_IA.xlsx", 120)
    assert _decide(tmp_path)["status"] == "empty inbox"
    workbook = write_workbook(tmp_path / "Folha_IA.xlsx")
    waiting = ingest_inbox_task.delay().get()
    assert waiting["status"] == "settling" and waiting["seconds_since_write"] < 30
    assert IngestionRun.objects.count() == 0
    _age(workbook, 60)
    done = ingest_inbox_task.delay().get()
    assert done["status"] == "succeeded" and IngestionRun.objects.get(pk=done["run_id"]).trigger == "beat"
    assert ingest_inbox_task.delay().get()["status"] == "unchanged"
    assert IngestionRun.objects.count() == 1


def test_a_broken_export_fails_once_per_retry_window_not_every_poll(empty_tables, tmp_path, settings):
    settings.INBOX_DIR = tmp_path
    settings.INBOX_SETTLE_SECONDS, settings.INBOX_RETRY_FAILED_AFTER_SECONDS = 30, 3600
    broken = tmp_path / "Folha_IA.xlsx"
    broken.write_bytes(b"PK\x03\x04 truncated export")
    _age(broken, 60)
    first = ingest_inbox_task.delay().get()
    assert first["status"] == "failed"
    second = ingest_inbox_task.delay().get()
    assert second["status"] == "failed recently" and second["run_id"] == first["run_id"] and second["error"]
    assert IngestionRun.objects.count() == 1
    assert _decide(tmp_path, retry_failed_after_seconds=0)["status"] == "ingest"  # the window is over: retried
    fixed = write_workbook(tmp_path / "Folha_IA_fixed.xlsx")  # a corrected export: new content, taken at once
    _age(fixed, 45)
    assert _decide(tmp_path)["file"] == "Folha_IA_fixed.xlsx" and _decide(tmp_path)["status"] == "ingest"
