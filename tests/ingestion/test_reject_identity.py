"""A reject's identity survives runs: the same bad row is one reject with its decision; fixed or gone, it is superseded."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from ingestion.models import Reject
from ingestion.services import ingest_workbook
from tests.ingestion.builders import base_rows, write_workbook

pytestmark = pytest.mark.django_db


def _run(tmp_path, rows, name):
    run = ingest_workbook(path=str(write_workbook(tmp_path / name, rows)))
    assert run.status == "succeeded", run.error
    return run


def _bad_rows(extra_order=None):
    rows = base_rows()
    rows["OrdensFabrico"].append([1003, "not a date", None, 10, 1, None])  # keyed: identity is the key 1003
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 9, None, None])  # no key in the sheet: identity is the content
    if extra_order:
        rows["OrdensFabrico"].append(extra_order)
    return rows


def test_the_same_bad_row_across_two_runs_keeps_one_reject_with_its_decision(empty_tables, tmp_path):
    first = _run(tmp_path, _bad_rows(), "one.xlsx")
    bad_date = Reject.objects.get(sheet="OrdensFabrico", reason="bad_date")
    severity = Reject.objects.get(sheet="OrdemFabricoErros")
    assert bad_date.identity == "k:1003" and severity.identity.startswith("h:")
    Reject.objects.filter(pk=bad_date.pk).update(status="acknowledged")
    Reject.objects.filter(pk=severity.pk).update(status="ignored")
    # A second, different file (a good order and a good error added) meets the same two bad rows, one moved down.
    rows = _bad_rows()
    rows["OrdensFabrico"].insert(0, [1004, "2024-04-01 08:00:00", None, 10, 1, None])
    rows["OrdemFabricoErros"].insert(0, ["fissura", 1002, 3, 1, None, None])
    second = _run(tmp_path, rows, "two.xlsx")
    assert Reject.objects.filter(sheet="OrdensFabrico").count() == 1
    assert Reject.objects.filter(sheet="OrdemFabricoErros").count() == 1
    bad_date.refresh_from_db()
    severity.refresh_from_db()
    assert (bad_date.status, bad_date.run_id, bad_date.first_seen_run_id, bad_date.times_seen) == (
        "acknowledged", second.pk, first.pk, 2)
    assert bad_date.row_number == 6  # where the second file has it
    assert (severity.status, severity.run_id, severity.times_seen, severity.row_number) == ("ignored", second.pk, 2, 6)
    # A third file that changes only the orders: the errors sheet is not read again, its reject stays as it was.
    rows["OrdensFabrico"].append([1006, "2024-05-01 08:00:00", None, 10, 1, None])
    third = _run(tmp_path, rows, "three.xlsx")
    severity.refresh_from_db()
    bad_date.refresh_from_db()
    assert (severity.status, severity.run_id, severity.times_seen) == ("ignored", second.pk, 2)
    assert (bad_date.status, bad_date.run_id, bad_date.times_seen) == ("acknowledged", third.pk, 3)


def test_a_fixed_row_closes_its_reject_as_superseded_and_a_new_bad_row_opens_one(empty_tables, tmp_path):
    _run(tmp_path, _bad_rows(), "one.xlsx")
    rows = base_rows()
    rows["OrdensFabrico"].append([1003, "2024-04-02 08:00:00", None, 10, 1, None])  # fixed in the ERP
    rows["OrdensFabrico"].append([1005, "32/13/2024", None, 10, 1, None])  # a new bad row
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 2, None, None])  # the severity fixed: a different content
    second = _run(tmp_path, rows, "two.xlsx")
    fixed = Reject.objects.get(identity="k:1003")
    assert (fixed.status, fixed.closed_in_run_id) == ("superseded", second.pk)
    assert Reject.objects.get(identity="k:1005").status == "open"
    assert list(Reject.objects.filter(sheet="OrdemFabricoErros").values_list("status", flat=True)) == ["superseded"]
    assert Reject.objects.exclude(status="superseded").count() == 1


def test_a_row_without_a_usable_key_is_identified_by_its_content(empty_tables, tmp_path):
    def rows_with(*models):
        rows = _bad_rows()
        rows["Modelos"].extend(models)
        return rows

    _run(tmp_path, rows_with([None, "K2 No key", 1, 1, 1, 1], [None, "K4 Other", 1, 1, 1, 1]), "one.xlsx")
    keyless = {r.identity: r for r in Reject.objects.filter(sheet="Modelos")}
    assert len(keyless) == 2 and all(i.startswith("h:") for i in keyless)
    # The same two rows in the other order, plus a third: two reused (by content, not row number), one new.
    _run(tmp_path, rows_with([None, "K4 Other", 1, 1, 1, 1], [None, "C1 Third", 1, 1, 1, 1],
                             [None, "K2 No key", 1, 1, 1, 1]), "two.xlsx")
    after = {r.identity: r for r in Reject.objects.filter(sheet="Modelos")}
    assert set(keyless) < set(after) and len(after) == 3
    assert sorted(r.times_seen for r in after.values()) == [1, 2, 2]


def test_identical_bad_rows_of_one_run_stay_apart_and_one_identity_is_live_once(empty_tables, tmp_path):
    rows = _bad_rows()
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 9, None, None])  # the same bad row twice in one file
    run = _run(tmp_path, rows, "one.xlsx")
    identities = sorted(Reject.objects.filter(sheet="OrdemFabricoErros").values_list("identity", flat=True))
    assert len(identities) == 2 and identities[1] == identities[0] + "#2"
    template = Reject.objects.get(identity="k:1003")
    with pytest.raises(IntegrityError), transaction.atomic():
        Reject.objects.create(run=run, sheet=template.sheet, identity=template.identity, row_number=99,
                              reason=template.reason, message="copy", original=template.original)
    Reject.objects.create(run=run, sheet=template.sheet, identity=template.identity, row_number=99,
                          reason=template.reason, message="closed copy", original=template.original, status="superseded")


def test_a_corrected_keyed_row_met_again_unchanged_stays_resolved(empty_tables, tmp_path):
    import io

    from openpyxl import load_workbook

    from ingestion.triage import rejects_export_xlsx, rejects_import_corrections
    from orders.models import ManufacturingOrder

    _run(tmp_path, _bad_rows(), "one.xlsx")
    reject = Reject.objects.get(identity="k:1003")
    exported = io.BytesIO()
    rejects_export_xlsx(reject_ids=[reject.pk], stream=exported)
    workbook = load_workbook(io.BytesIO(exported.getvalue()))
    workbook["OrdensFabrico"].cell(2, 2).value = "2024-04-02 08:00:00"  # the steward fixes the date in Excel
    fixed = io.BytesIO()
    workbook.save(fixed)
    fixed.seek(0)
    assert rejects_import_corrections(stream=fixed)["resolved"] == 1
    # The ERP still sends the bad row (another order changed, so the sheet is read again).
    rows = _bad_rows()
    rows["OrdensFabrico"].append([1007, "2024-06-01 08:00:00", None, 10, 1, None])
    second = _run(tmp_path, rows, "two.xlsx")
    reject.refresh_from_db()
    assert (reject.status, reject.run_id, reject.times_seen) == ("resolved", second.pk, 2)
    assert Reject.objects.filter(sheet="OrdensFabrico").count() == 1  # no new open reject for a row already corrected
    assert ManufacturingOrder.objects.get(pk=1003).created_at.date().isoformat() == "2024-04-02"
    # The ERP then sends it bad in another way: a new open reject, the resolved one stays as it was.
    rows["OrdensFabrico"][-2] = [1003, "still not a date", None, 10, 1, None]
    third = _run(tmp_path, rows, "three.xlsx")
    assert Reject.objects.get(identity="k:1003", status="open").run_id == third.pk
    reject.refresh_from_db()
    assert (reject.status, reject.run_id) == ("resolved", second.pk)
