"""Supervisor and steward journeys in a real browser (Chromium via Playwright) on the generated demo workbook."""

from __future__ import annotations

import re
from io import BytesIO

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_login_and_overview_shows_the_api_kpis(web, loaded):
    page = web.page
    page.goto(web.base_url + "/")
    assert "/accounts/login/" in page.url
    web.check_accessibility()
    web.shot("login")
    web.login()
    api = page.request.get(web.base_url + "/api/kpis/overview").json()
    raw = {el.get_attribute("data-kpi"): el.get_attribute("data-raw") for el in page.locator("[data-kpi]").all()}
    assert float(raw["lead_time_p50"]) == api["lead_time_days"]["value"]["p50"]
    assert float(raw["lead_time_p90"]) == api["lead_time_days"]["value"]["p90"]
    assert float(raw["throughput"]) == api["throughput_per_week"]["value"]
    assert int(raw["wip"]) == api["wip"]["value"]["count"]
    assert float(raw["on_time"]) == api["on_time_rate"]["value"]
    assert float(raw["rework"]) == api["rework_rate"]["value"]
    assert page.locator('[data-kpi="wip"]').inner_text().strip() == str(api["wip"]["value"]["count"])
    assert page.locator("#freshness-chip").get_attribute("href") == "/ingestion/"
    assert page.locator("canvas[data-ready]").count() >= 1  # the WIP chart was drawn
    assert page.locator("#risk-table tbody tr").count() <= 10
    web.check_accessibility()
    web.shot("overview")


def test_filter_orders_and_load_more(web, loaded):
    from orders.models import ManufacturingOrder

    web.login()
    web.goto("/orders/")
    page = web.page
    total = ManufacturingOrder.objects.filter(created_at__lte=loaded["as_of"]).count()
    assert page.locator("tr.order-row").count() == min(50, total)
    page.click("#load-more")
    page.wait_for_function(f"() => document.querySelectorAll('tr.order-row').length === {min(100, total)}")
    ids = [int(x) for x in page.locator("tr.order-row").evaluate_all("rows => rows.map(r => r.dataset.orderId)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    web.check_accessibility()
    web.shot("orders")
    page.check('input[name=status][value="DONE"]')
    page.wait_for_url(re.compile(r"status=DONE"))
    page.wait_for_function("() => Array.from(document.querySelectorAll('tr.order-row .badge'))"
                           ".every(b => b.classList.contains('badge-DONE'))")
    done = ManufacturingOrder.objects.filter(finished_at__lte=loaded["as_of"]).count()
    assert page.locator("tr.order-row").count() == min(50, done)
    assert "status=DONE" in page.locator("#export-link").get_attribute("href")
    with page.expect_download() as download:
        page.click("#export-link")
    from openpyxl import load_workbook

    path = download.value.path()
    rows = list(load_workbook(BytesIO(open(path, "rb").read()), read_only=True).worksheets[0].iter_rows(values_only=True))  # sheet named in the reader's language
    assert len(rows) - 1 == done
    web.shot("orders-filtered")


def test_open_an_order_and_see_its_timeline(web, loaded):
    from orders.models import OrderPhase

    web.login()
    web.goto("/orders/")
    page = web.page
    order_id = next(int(i) for i in page.locator("tr.order-row").evaluate_all("rows => rows.map(r => r.dataset.orderId)")
                    if OrderPhase.objects.filter(order_id=int(i), started_at__isnull=False).exists())
    page.click(f'tr[data-order-id="{order_id}"] a')
    page.wait_for_url(re.compile(rf"/orders/{order_id}/$"))
    web.wait_widgets()
    started = OrderPhase.objects.filter(order_id=order_id, started_at__isnull=False).count()
    assert page.locator("svg#gantt rect.bar, svg#gantt circle").count() == started
    assert page.locator("#prediction").count() == 1
    assert str(order_id) in page.locator("h1").inner_text()
    web.check_accessibility()
    web.shot("order-detail")


def test_switch_language(web, loaded):
    web.login()
    page = web.page
    assert page.locator("h1").inner_text().strip() == "Visão geral da fábrica"
    page.select_option("#language-select", "en")
    page.wait_for_function("() => document.querySelector('h1').textContent.trim() === 'Factory overview'")
    web.wait_widgets()
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Lead time p50" in page.locator("#kpi-cards").inner_text()
    web.shot("overview-en")
    page.select_option("#language-select", "pt-pt")
    page.wait_for_function("() => document.querySelector('h1').textContent.trim() === 'Visão geral da fábrica'")


def test_upload_a_workbook_and_watch_progress_reach_done(web, loaded, tmp_path):
    from django.core.management import call_command

    from ingestion.models import IngestionRun

    other = tmp_path / "Folha_IA_next.xlsx"  # a different file, so the pipeline really runs
    call_command("make_demo_workbook", str(other), scale=0.005, seed=43, as_of="2025-12-15")
    web.login()
    web.goto("/ingestion/")
    page = web.page
    web.check_accessibility()
    page.set_input_files("#id_workbook", str(other))
    page.check("#id_allow_shrink")  # another seed: a different factory, most stored rows go away
    page.click("#upload-button")
    page.wait_for_selector(".run-progress")
    assert page.locator('.run-progress [role="progressbar"]').count() == 1 + 9
    page.wait_for_selector("#run-done", timeout=120000)
    run = IngestionRun.objects.order_by("-id").first()
    assert run.status == "succeeded" and run.trigger == "ui"
    assert page.locator(".run-progress").get_attribute("data-status") == "succeeded"
    assert page.locator('.run-progress > [role="progressbar"]').get_attribute("aria-valuenow") == "100"
    web.shot("ingestion-done")
    page.click("#run-done a >> nth=0")
    page.wait_for_selector("#sheet-table")
    assert page.locator("#admin-rejects-link").get_attribute("href") == f"/admin/ingestion/reject/?run__id__exact={run.pk}"
    web.check_accessibility()
    web.shot("ingestion-report")


def test_triage_a_reject_in_admin(web, loaded):
    from ingestion.models import Reject

    web.login()
    page = web.page
    run_id = loaded["run_id"]
    web.goto(f"/admin/ingestion/reject/?run__id__exact={run_id}&status=all")  # every decision, not only open ones
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == Reject.objects.filter(run_id=run_id).count() or rows.count() >= 1
    first_id = int(page.locator("#result_list tbody tr input.action-select").first.get_attribute("value"))
    page.locator("#result_list tbody tr input.action-select").first.check()
    page.select_option("select[name=action]", "acknowledge")
    page.click("button[name=index], button.button[type=submit]")
    page.wait_for_selector("input[name=confirm][value=yes]", state="attached")
    web.shot("admin-confirm")
    assert Reject.objects.get(pk=first_id).status == "open"  # nothing changes before the confirmation
    page.click("form input[type=submit].default")
    page.wait_for_selector("ul.messagelist li")
    assert "1" in page.locator("ul.messagelist li").first.inner_text()
    assert Reject.objects.get(pk=first_id).status == "acknowledged"
    web.shot("admin-acknowledged")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "export_xlsx")
    with page.expect_download() as download:
        page.click("button[name=index], button.button[type=submit]")
    from openpyxl import load_workbook

    book = load_workbook(BytesIO(open(download.value.path(), "rb").read()), read_only=True)
    exported = sum(sum(1 for _ in sheet.iter_rows()) - 1 for sheet in book.worksheets)
    assert exported == Reject.objects.filter(run_id=run_id).count()  # every reject of the filtered run


def test_run_a_whatif_and_see_deltas(web, loaded):
    from whatif.models import WhatIfRun

    web.login()
    web.goto("/whatif/")
    page = web.page
    web.check_accessibility()
    page.select_option("#id_priority_rule", "SPT")
    page.fill("#id_horizon_days", "28")
    phase_value = page.locator("#cap-0-phase option").nth(1).get_attribute("value")
    page.select_option("#cap-0-phase", phase_value)
    page.fill("#cap-0-servers", "3")
    page.click("#run-button")
    page.wait_for_selector("#delta-table", timeout=60000)
    run = WhatIfRun.objects.get()
    out = run.outputs
    cell = page.locator('#delta-table tr[data-kpi="orders_finished"] td.delta').inner_text().strip()
    delta = out["scenario"]["orders_finished"] - out["baseline"]["orders_finished"]
    assert cell.lstrip("+") == str(delta)
    assert page.locator("#whatif-result canvas[data-ready]").count() == 1
    web.shot("whatif-result")
    web.goto("/whatif/")
    assert page.locator(f'#runs-table a[href="/whatif/{run.pk}/"]').count() == 1


@pytest.mark.parametrize("path,label", [("/quality/", "quality"), ("/inventory/", "inventory"), ("/models/", "models")])
def test_dashboards_render_without_errors(web, loaded, path, label):
    web.login()
    web.goto(path)
    page = web.page
    assert page.locator(".widget-error").count() == 0
    web.check_accessibility()
    if label == "inventory":
        assert page.locator(".theoretical-banner").count() == 1
        assert page.locator("canvas[data-ready]").count() >= 1
    if label == "quality":
        assert page.locator("#heatmap, .not-supported").count() >= 1
    web.shot(label)
