"""The steward's admin: open rejects by default, a decision from the detail page, integer ids, the export's marked
cells and frozen header, and data-quality issues that lead to the orders they affect."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from openpyxl import load_workbook

from ingestion.models import DataQualityIssue, Reject
from ingestion.services import ingest_workbook
from tests.ingestion.builders import base_rows, write_workbook

pytestmark = pytest.mark.django_db




@pytest.fixture
def rejected_run(empty_tables, tmp_path):
    rows = base_rows()
    rows["OrdensFabrico"].append([1003, "not a date", "neither a date", 10, 1, None])  # two bad cells in one row
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 9, None, None])
    rows["FuncionariosFaseOrdemFabrico"].append([5000, 100, 1])  # duplicate key
    run = ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx", rows)))
    assert run.status == "succeeded", run.error
    return run


def _listed_ids(body: str) -> set[int]:
    import re

    return {int(i) for i in re.findall(r'name="_selected_action" value="(\d+)"', body)}


def test_the_reject_list_opens_on_open_rejects_and_all_clears_it(steward_client, rejected_run):
    rejects = list(Reject.objects.order_by("pk"))
    assert len(rejects) == 3
    Reject.objects.filter(pk=rejects[0].pk).update(status="ignored")
    body = steward_client.get("/admin/ingestion/reject/").content.decode()
    assert _listed_ids(body) == {r.pk for r in rejects[1:]}
    assert 'href="?status=all"' in body
    everything = steward_client.get("/admin/ingestion/reject/?status=all").content.decode()
    assert _listed_ids(everything) == {r.pk for r in rejects}
    ignored = steward_client.get("/admin/ingestion/reject/?status=ignored").content.decode()
    assert _listed_ids(ignored) == {rejects[0].pk}


def test_ids_and_rows_are_plain_integers(steward_client, rejected_run, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    reject = Reject.objects.get(reason="bad_severity")
    Reject.objects.filter(pk=reject.pk).update(id=12345, row_number=2345)
    body = steward_client.get("/admin/ingestion/reject/", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode()
    assert '<a href="/admin/ingestion/reject/12345/change/">12345</a>' in body
    assert '<td class="field-excel_row">2345</td>' in body
    assert "12.345" not in body and "12,345" not in body and "2.345" not in body
    detail = steward_client.get("/admin/ingestion/reject/12345/change/", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode()
    assert '<div class="readonly">2345</div>' in detail and "2.345" not in detail
    from ingestion.models import IngestionRun

    copy = IngestionRun.objects.get(pk=rejected_run.pk)
    copy.pk = 4321
    copy.save(force_insert=True)
    runs = steward_client.get("/admin/ingestion/ingestionrun/", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode()
    assert '<a href="/admin/ingestion/ingestionrun/4321/change/">4321</a>' in runs and "4.321" not in runs


def test_acknowledge_and_ignore_from_the_detail_page(steward_client, rejected_run):
    reject = Reject.objects.get(reason="bad_severity")
    url = f"/admin/ingestion/reject/{reject.pk}/change/"
    page = steward_client.get(url).content.decode()
    action = f'action="/admin/ingestion/reject/{reject.pk}/triage/"'
    assert action in page and 'value="acknowledged"' in page and 'value="ignored"' in page
    done = steward_client.post(f"/admin/ingestion/reject/{reject.pk}/triage/", {"status": "acknowledged"}, follow=True)
    assert done.redirect_chain[-1][0] == url and f"Reject {reject.pk} marked as “Acknowledged”." in done.content.decode()
    reject.refresh_from_db()
    assert reject.status == "acknowledged" and reject.triaged_by.username == "steward1"
    after = steward_client.get(url).content.decode()
    assert 'value="acknowledged"' not in after and 'value="ignored"' in after and 'value="open"' in after
    steward_client.post(f"/admin/ingestion/reject/{reject.pk}/triage/", {"status": "ignored"})
    reject.refresh_from_db()
    assert reject.status == "ignored"
    assert steward_client.get(f"/admin/ingestion/reject/{reject.pk}/triage/").status_code == 405
    Reject.objects.filter(pk=reject.pk).update(status="superseded")
    refused = steward_client.post(f"/admin/ingestion/reject/{reject.pk}/triage/", {"status": "open"})
    reject.refresh_from_db()
    assert refused.status_code == 302 and reject.status == "superseded"  # a closed reject takes no decision
    assert action not in steward_client.get(url).content.decode()


def test_a_viewer_cannot_decide(client, rejected_run):
    user = get_user_model().objects.create_user("viewer-g", password="x-Very-Long-pass-1", is_staff=True)
    client.force_login(user)
    reject = Reject.objects.get(reason="bad_severity")
    response = client.post(f"/admin/ingestion/reject/{reject.pk}/triage/", {"status": "ignored"})
    assert response.status_code in (302, 403)
    reject.refresh_from_db()
    assert reject.status == "open"


def test_the_export_fills_the_bad_cells_with_a_comment_and_freezes_the_header(steward_client, rejected_run):
    ids = list(Reject.objects.values_list("pk", flat=True))
    response = steward_client.post("/admin/ingestion/reject/", {"action": "export_xlsx", "_selected_action": ids})
    workbook = load_workbook(io.BytesIO(response.content))
    orders = workbook["OrdensFabrico"]
    assert orders.freeze_panes == "A2"
    header = [c.value for c in orders[1]]
    row = orders[2]
    marked = {header[c.column - 1]: c for c in row if c.fill.fill_type == "solid"}
    assert set(marked) == {"Of_DataCriacao", "Of_DataAcabamento"}  # both bad cells, not only the first one
    assert marked["Of_DataCriacao"].fill.fgColor.rgb.endswith("FDE2E1")
    assert "Unparseable date" in marked["Of_DataCriacao"].comment.text
    assert "Unparseable date" in marked["Of_DataAcabamento"].comment.text
    assert all(c.comment is None for c in row if header[c.column - 1] not in marked)
    for name, column, reason in (("OrdemFabricoErros", "OFCH_GRAVIDADE", "Severity outside 1..3"),
                                 ("FuncionariosFaseOrdemFabrico", "FuncionarioFaseOf_FaseOfId", "Duplicate key")):
        sheet = workbook[name]
        header = [c.value for c in sheet[1]]
        assert sheet.freeze_panes == "A2"
        marked = [c for c in sheet[2] if c.fill.fill_type == "solid"]
        assert [header[c.column - 1] for c in marked] == [column] and reason in marked[0].comment.text


def test_a_data_quality_issue_links_to_the_orders_it_affects(steward_client, rejected_run):
    unknown_product = DataQualityIssue.objects.get(kind="orphan_product", entity="OrdensFabrico.Of_ProdutoId", key="999")
    body = steward_client.get("/admin/ingestion/dataqualityissue/?status__exact=open").content.decode()
    link = f"/admin/ingestion/dataqualityissue/{unknown_product.pk}/orders/"
    assert f'href="{link}"' in body
    response = steward_client.get(link)
    assert response.status_code == 302 and response["Location"] == "/admin/orders/manufacturingorder/?id__in=1001"
    orders = steward_client.get(response["Location"]).content.decode()
    assert "/admin/orders/manufacturingorder/1001/change/" in orders
    assert "/admin/orders/manufacturingorder/1000/change/" not in orders
    detail = steward_client.get(f"/admin/ingestion/dataqualityissue/{unknown_product.pk}/change/").content.decode()
    assert 'href="/admin/orders/manufacturingorder/?id__in=1001">1 order</a>' in detail
    # Issues whose missing thing is the order (or the order phase leading to it) name no stored order: no link.
    for entity in ("FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FaseOfId", "FasesOrdemFabrico.FaseOf_OfId"):
        issue = DataQualityIssue.objects.create(kind="orphan_order_phase" if "FaseOfId" in entity else "orphan_order",
                                                entity=entity, key="424242", row_count=1)
        body = steward_client.get("/admin/ingestion/dataqualityissue/?status__exact=open").content.decode()
        assert f"/admin/ingestion/dataqualityissue/{issue.pk}/orders/" not in body
        assert steward_client.get(f"/admin/ingestion/dataqualityissue/{issue.pk}/orders/").status_code == 404
