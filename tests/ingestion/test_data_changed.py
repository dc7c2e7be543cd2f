"""The data_changed signal: every subscribed app hears each ingestion, inside its transaction; none is skipped."""

from __future__ import annotations

import pytest

from ingestion.contract import SHEETS
from ingestion.models import IngestionRun
from ingestion.services import ingest_workbook
from orders.models import ManufacturingOrder, OrderSummary
from prodplan.signals import data_changed
from tests.ingestion.builders import base_rows, write_workbook

pytestmark = pytest.mark.django_db

SUBSCRIBERS = {"orders.data_changed", "quality.data_changed", "inventory.data_changed"}
WARM_TASKS = {"orders.warm_cache", "quality.warm_cache", "inventory.warm_cache"}


def _subscribers() -> set[str]:
    return {entry[0][0] for entry in data_changed.receivers if isinstance(entry[0][0], str)}  # dispatch_uid


def test_each_app_subscribes_in_its_app_config():
    assert _subscribers() >= SUBSCRIBERS


def test_an_ingestion_reaches_every_subscribed_app(empty_tables, tmp_path, django_capture_on_commit_callbacks):
    heard: list[dict] = []

    def listen(sender, **kwargs):
        heard.append({**kwargs, "sender": sender,
                      "summaries": OrderSummary.objects.count()})  # the receivers before this one have run

    data_changed.connect(listen, dispatch_uid="test.listen")
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False)
    finally:
        data_changed.disconnect(dispatch_uid="test.listen")
    assert run.status == "succeeded"
    assert len(heard) == 1
    assert heard[0]["sender"] is IngestionRun and heard[0]["run_id"] == run.pk and heard[0]["as_of"] == run.as_of
    assert heard[0]["sheets"] == sorted(spec.name for spec in SHEETS) and heard[0]["warm_cache"] is True
    # orders rebuilt its aggregates in the run's transaction; every app queued its warm-up for the commit
    orders = ManufacturingOrder.objects.count()
    assert orders and heard[0]["summaries"] == orders == OrderSummary.objects.count()
    queued = {getattr(getattr(cb, "__self__", None), "name", "") for cb in callbacks}
    assert queued >= WARM_TASKS


def test_a_failing_subscriber_fails_the_run_and_changes_nothing(empty_tables, tmp_path):
    def refuse(sender, **kwargs):
        raise RuntimeError("subscriber could not refresh")

    summaries_before = OrderSummary.objects.count()  # empty_tables leaves the summaries of earlier loads
    data_changed.connect(refuse, dispatch_uid="test.refuse")
    try:
        run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False)
    finally:
        data_changed.disconnect(dispatch_uid="test.refuse")
    assert run.status == "failed" and "subscriber could not refresh" in run.error
    assert ManufacturingOrder.objects.count() == 0 and OrderSummary.objects.count() == summaries_before


def test_only_the_changed_sheets_are_named(empty_tables, tmp_path):
    heard: list[list[str]] = []
    data_changed.connect(lambda sender, **kw: heard.append(kw["sheets"]), dispatch_uid="test.sheets", weak=False)
    try:
        path = write_workbook(tmp_path / "a.xlsx")
        ingest_workbook(path=str(path), profile=False)
        rows = base_rows()
        rows["OrdemFabricoErros"].append(["fissura", 1000, 3, 1, 5001, None])
        ingest_workbook(path=str(write_workbook(tmp_path / "b.xlsx", rows)), profile=False)
    finally:
        data_changed.disconnect(dispatch_uid="test.sheets")
    assert heard[0] == sorted(spec.name for spec in SHEETS)
    assert heard[1] == ["OrdemFabricoErros"]
