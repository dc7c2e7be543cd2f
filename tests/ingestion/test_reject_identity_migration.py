"""Migration 0006 backfills the identity of rejects recorded before it, keeps one live reject per identity (with the
latest decision), supersedes the rows a later run no longer had, and goes back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("ingestion", "0005_translated_names")]
AFTER = [("ingestion", "0006_reject_identity")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.mark.django_db(transaction=True)
def test_backfill_merges_the_same_bad_row_of_earlier_runs_and_goes_back():
    apps = _migrate(BEFORE)
    try:
        with connection.cursor() as cursor:  # a transactional test (run last, flushed after): start without other runs
            cursor.execute("TRUNCATE ingestion_reject, ingestion_sheetrun, ingestion_dataqualityissue, ingestion_ingestionrun "
                           "CASCADE")
        Run = apps.get_model("ingestion", "IngestionRun")
        SheetRun = apps.get_model("ingestion", "SheetRun")
        Reject = apps.get_model("ingestion", "Reject")
        runs = [Run.objects.create(file_name=f"run{i}.xlsx", file_sha256=f"{i}" * 64, status="succeeded") for i in range(3)]
        for run in runs:
            SheetRun.objects.create(run=run, sheet="OrdensFabrico", sha256="x")
        bad_date = {"Of_Id": "1003", "Of_DataCriacao": "not a date"}
        fixed_later = {"Of_Id": 1005.0, "Of_DataCriacao": "32/13/2024"}
        no_key = {"Of_Id": None, "Of_DataCriacao": "2024-01-01"}
        made = {}
        for index, run in enumerate(runs):  # the same bad rows, recorded again by every run (the old behaviour)
            made[("bad", index)] = Reject.objects.create(run=run, sheet="OrdensFabrico", row_number=5, reason="bad_date",
                                                         message="m", original=bad_date)
            made[("nokey", index)] = Reject.objects.create(run=run, sheet="OrdensFabrico", row_number=7,
                                                           reason="missing_key", message="m", original=no_key)
            if index < 2:  # fixed in the ERP before the third run
                made[("fixed", index)] = Reject.objects.create(run=run, sheet="OrdensFabrico", row_number=6,
                                                               reason="bad_date", message="m", original=fixed_later)
        Reject.objects.filter(pk=made[("bad", 0)].pk).update(status="acknowledged")  # decided on the first copy
        apps = _migrate(AFTER)
        Reject = apps.get_model("ingestion", "Reject")
        live = {r.identity: r for r in Reject.objects.filter(status__in=["open", "acknowledged", "ignored"])}
        assert set(live) == {"k:1003", next(i for i in live if i.startswith("h:"))} and len(live) == 2
        kept = live["k:1003"]
        assert (kept.pk, kept.status, kept.times_seen, kept.first_seen_run_id) == (
            made[("bad", 2)].pk, "acknowledged", 3, runs[0].pk)
        fixed = Reject.objects.get(pk=made[("fixed", 1)].pk)
        assert (fixed.identity, fixed.status, fixed.closed_in_run_id) == ("k:1005", "superseded", runs[2].pk)
        assert Reject.objects.filter(status="superseded").count() == 6  # 2 + 2 older copies, 2 copies of the fixed row
        _migrate(BEFORE)
        Reject = _migrate(BEFORE).get_model("ingestion", "Reject")
        assert Reject.objects.filter(status="superseded").count() == 0 and Reject.objects.count() == 8
    finally:
        _migrate(AFTER)
