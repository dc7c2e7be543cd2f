"""Steward journeys in a real browser (#19): a reject exported, fixed in the workbook, imported back and resolved;
the same bad row met by a second run keeps its triage decision."""

from __future__ import annotations

import re
from io import BytesIO

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A fix the checks accept, per reason (the bad cell is the reject's column).
FIXES = {"bad_severity": 2, "bad_number": 1}


@pytest.fixture
def steward(loaded):
    """A staff user who is only a data steward."""
    from django.contrib.auth.models import User

    from prodplan.roles import ensure_role_groups
    from tests.e2e.conftest import PASSWORD

    _supervisors, stewards = ensure_role_groups()
    user = User.objects.create_user("steward", password=PASSWORD, is_staff=True)
    user.groups.add(stewards)
    return user


def _row(page, reject_id: int):
    return page.locator("#result_list tbody tr").filter(has=page.locator(f'input.action-select[value="{reject_id}"]'))


def test_reject_export_fix_import_resolved(web, loaded, steward):
    from openpyxl import load_workbook

    from ingestion.models import Reject

    reject = next((r for reason in FIXES for r in Reject.objects.filter(run_id=loaded["run_id"], status="open",
                                                                         reason=reason).order_by("id")[:1]), None)
    assert reject is not None, "the demo workbook plants no reject with a known fix"
    web.login("steward")
    page = web.page
    web.goto("/admin/ingestion/reject/")
    # the list opens on open rejects
    assert page.locator("#changelist-filter li.selected a", has_text=re.compile("Abert|Open", re.I)).count() >= 1
    shown = page.locator("#result_list tbody input.action-select").evaluate_all("els => els.map(e => +e.value)")
    assert shown and set(shown) <= set(Reject.objects.filter(status="open").values_list("pk", flat=True))
    web.goto(f"/admin/ingestion/reject/?reason={reject.reason}")
    _row(page, reject.pk).locator("input.action-select").check()
    page.select_option("select[name=action]", "export_xlsx")
    web.shot("reject-selected")
    with page.expect_download() as download:
        page.click("button[name=index], button.button[type=submit]")
    book = load_workbook(BytesIO(open(download.value.path(), "rb").read()))
    assert [ws.title for ws in book.worksheets] == [reject.sheet]
    sheet = book[reject.sheet]
    header = [c.value for c in sheet[1]]
    assert header[-1] == "_reject_id" and sheet.freeze_panes == "A2"
    assert sheet.max_row == 2 and sheet.cell(2, len(header)).value == reject.pk
    bad = sheet.cell(2, header.index(reject.column) + 1)
    assert bad.comment is not None and bad.fill.fgColor.rgb not in (None, "00000000")  # the bad cell is marked
    bad.value = FIXES[reject.reason]
    fixed = download.value.path().parent / "fixed.xlsx"
    book.save(fixed)

    page.click('a[href="/admin/ingestion/reject/import-corrections/"]')
    page.wait_for_url(re.compile(r"/import-corrections/$"))
    page.set_input_files("#id_corrections", str(fixed))
    web.shot("import-form")
    page.click("#content-main input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/ingestion/reject/$"))
    messages = page.locator("ul.messagelist li")
    assert messages.count() == 1  # one summary, not a message per row
    summary = messages.first.inner_text()
    assert summary.startswith("1 ") and messages.first.locator("a[href$='report.csv']").count() == 1
    web.shot("import-summary")

    reject.refresh_from_db()
    assert reject.status == "resolved"
    assert _row(page, reject.pk).count() == 0  # gone from the open list
    web.goto(f"/admin/ingestion/reject/?status=resolved&reason={reject.reason}")
    assert _row(page, reject.pk).count() == 1
    web.shot("reject-resolved")


def test_the_same_bad_row_across_two_runs_keeps_its_decision(web, loaded, steward):
    from django.utils import translation

    from ingestion.choices import TriageStatus
    from ingestion.models import Reject
    from ingestion.services import ingest_workbook

    reject = Reject.objects.filter(run_id=loaded["run_id"], status="open").order_by("id").first()
    assert reject is not None and reject.times_seen == 1
    web.login("steward")
    page = web.page
    web.goto(f"/admin/ingestion/reject/{reject.pk}/change/")
    page.locator("form[action$='/triage/'] button[value=acknowledged]").click()
    page.wait_for_url(re.compile(rf"/admin/ingestion/reject/{reject.pk}/change/$"))
    assert page.locator("ul.messagelist li").count() == 1
    reject.refresh_from_db()
    assert reject.status == "acknowledged"
    web.shot("acknowledged")

    run = ingest_workbook(path=str(loaded["path"]), force=True)  # the same workbook, the same bad rows
    assert run.status == "succeeded" and run.pk != loaded["run_id"]
    web.goto("/admin/ingestion/reject/?status=all")
    row = _row(page, reject.pk)
    if row.count() == 0:  # paginated: narrow to its sheet and reason
        web.goto(f"/admin/ingestion/reject/?status=all&sheet={reject.sheet}&reason={reject.reason}")
        row = _row(page, reject.pk)
    assert row.count() == 1
    assert row.locator("td.field-seen").inner_text().strip() == "2"
    with translation.override("pt-pt"):
        acknowledged = str(TriageStatus.ACKNOWLEDGED.label)  # the status as the steward's language names it
    assert row.locator("td.field-status").inner_text().strip() == acknowledged
    assert row.locator("td.field-run_number").inner_text().strip() == f"#{run.pk}"
    reject.refresh_from_db()
    assert reject.status == "acknowledged" and reject.times_seen == 2 and reject.run_id == run.pk
    # no second reject for the same row
    assert Reject.objects.filter(sheet=reject.sheet, identity=reject.identity).count() == 1
    web.shot("acknowledged-after-second-run")
