"""Quality page on the ingested demo workbook: heatmap counts, Pareto and trend recomputed from the error rows."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, time, timedelta
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from orders.models import ManufacturingOrder, OrderPhase, Product
from quality.models import QualityError

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sclient(client, db):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-123"))
    return client


def _chart(html: str, chart_id: str) -> dict:
    return json.loads(re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_quality_page_and_widgets(sclient, ingested, pinned_queries):
    with pinned_queries("quality.test_views.test_quality_page_and_widgets"):
        html = sclient.get("/quality/").content.decode()
    assert html.count("<h1") == 1
    for widget in ("heatmap", "pareto", "trend", "notes"):
        assert f"/quality/?widget={widget}" in html
    errors = list(QualityError.objects.values("description", "culprit_order_phase_id"))

    with pinned_queries("quality.test_views.test_quality_page_and_widgets[2]"):
        heat = sclient.get("/quality/?widget=heatmap", **HX).content.decode()
    phase_ids = set(OrderPhase.objects.values_list("id", flat=True))
    with_culprit = sum(1 for e in errors if e["culprit_order_phase_id"] in phase_ids)
    totals = [int(x) for x in re.findall(r'<td class="num total-col row-total"><strong>(\d+)</strong></td>', heat)]
    assert sum(totals) == with_culprit > 0

    pareto = sclient.get("/quality/?widget=pareto", **HX).content.decode()
    config = _chart(pareto, "chart-pareto")
    top = Counter(e["description"] for e in errors).most_common(1)[0][1]
    assert config["data"]["datasets"][0]["data"][0] == top
    cumulative = config["data"]["datasets"][1]["data"]
    assert cumulative == sorted(cumulative) and cumulative[-1] <= 1.0

    trend = sclient.get("/quality/?widget=trend", **HX).content.decode()
    months = _chart(trend, "chart-trend")
    dated = QualityError.objects.filter(event_time__isnull=False).count()
    assert sum(sum(ds["data"]) for ds in months["data"]["datasets"]) == dated

    notes = sclient.get("/quality/?widget=notes", **HX).content.decode()
    assert str(len(errors)) in notes and "%" in notes


# --- #19: defects by product / family, the period filter on every widget, heatmap top phases, Pareto key ----------

def _in_scope_errors(as_of, since=None, until=None):
    scope = QualityError.objects.filter(Q(event_time__isnull=True) | Q(event_time__lte=as_of))
    if since is not None or until is not None:
        scope = scope.filter(event_time__gte=since, event_time__lt=until)
    return list(scope.values("id", "order_id", "description", "found_phase_id", "culprit_order_phase_id", "event_time"))


def _expected_by_family(as_of, errors, since=None, until=None) -> tuple[dict, dict]:
    """Per family and per product: [orders, errors, orders with errors], counted from the rows."""
    orders = ManufacturingOrder.objects.filter(Q(created_at__isnull=True) | Q(created_at__lte=as_of))
    if since is not None:
        orders = orders.filter(created_at__gte=since, created_at__lt=until)
    family_of = dict(Product.objects.values_list("id", "family"))
    per_order = Counter(e["order_id"] for e in errors)
    families, products = {}, {}
    for order_id, product_id in orders.values_list("id", "product_id"):
        for acc in (families.setdefault(family_of.get(product_id, "UNKNOWN"), [0, 0, 0]),
                    products.setdefault(product_id, [0, 0, 0])):
            acc[0] += 1
            acc[1] += per_order.get(order_id, 0)
            acc[2] += 1 if per_order.get(order_id) else 0
    return families, products


def _rows(html: str, key: str) -> dict:
    return {k: [int(o), int(e), int(w)] for k, o, e, w in re.findall(
        rf'data-{key}="([^"]*)" data-orders="(\d+)" data-errors="(\d+)" data-with-errors="(\d+)"', html)}


def _window(as_of):
    dated = sorted(e["event_time"] for e in _in_scope_errors(as_of) if e["event_time"])
    start = timezone.localtime(dated[len(dated) // 4]).date()
    end = timezone.localtime(dated[len(dated) // 2]).date()
    since = timezone.make_aware(datetime.combine(start, time.min))
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    return start, end, since, until


def _heat_totals(html: str) -> tuple[list[int], list[int], int]:
    rows = [int(x) for x in re.findall(r'<td class="num total-col row-total"><strong>(\d+)</strong>', html)]
    cols = [int(x) for x in re.findall(r'<td class="num col-total"><strong>(\d+)</strong>', html)]
    grand = int(re.search(r'<table class="heatmap" id="heatmap" data-total="(\d+)"', html).group(1))
    return rows, cols, grand


def test_defects_by_family_and_product_match_rows(supervisor_client, ingested, pinned_queries):
    as_of = ingested["as_of"]
    with pinned_queries("quality.test_views.test_defects_by_family_and_product_match_rows"):
        html = supervisor_client.get("/quality/?widget=by_product", **HX).content.decode()
    families, products = _expected_by_family(as_of, _in_scope_errors(as_of))
    assert _rows(html, "family") == {str(k): v for k, v in families.items()}
    shown = _rows(html, "product")
    assert shown and all(products[int(k) if k != "None" else None] == v for k, v in shown.items())
    assert sum(v[0] for v in families.values()) > 0 and sum(v[1] for v in families.values()) > 0


def test_heatmap_top_phases_and_other_sum_to_the_total(supervisor_client, ingested):
    from quality.views import HEATMAP_TOP

    as_of = ingested["as_of"]
    html = supervisor_client.get("/quality/?widget=heatmap", **HX).content.decode()
    phase_of = dict(OrderPhase.objects.values_list("id", "phase_id"))
    cells = Counter((e["found_phase_id"], phase_of[e["culprit_order_phase_id"]]) for e in _in_scope_errors(as_of)
                    if e["culprit_order_phase_id"] in phase_of)
    rows, cols, grand = _heat_totals(html)
    assert grand == sum(rows) == sum(cols) == sum(cells.values()) > 0
    found = {f for f, _c in cells}
    culprit = {c for _f, c in cells}
    assert len(rows) == min(len(found), HEATMAP_TOP) + (len(found) > HEATMAP_TOP)
    assert len(cols) == min(len(culprit), HEATMAP_TOP) + (len(culprit) > HEATMAP_TOP)
    # The kept rows are the phases with most errors found there, in that order.
    per_found = Counter()
    for (f, _c), n in cells.items():
        per_found[f] += n
    assert rows[:HEATMAP_TOP] == sorted(per_found.values(), reverse=True)[:HEATMAP_TOP]
    if len(found) > HEATMAP_TOP or len(culprit) > HEATMAP_TOP:
        assert "Other phases" in html or "Outras fases" in html
    assert "position: sticky" in (Path(settings.BASE_DIR) / "static/css/app.css").read_text().split(".heatmap thead th")[1][:80]


def test_period_filter_narrows_every_widget(supervisor_client, ingested):
    as_of = ingested["as_of"]
    start, end, since, until = _window(as_of)
    query = f"date_from={start}&date_to={end}"
    page = supervisor_client.get(f"/quality/?{query}").content.decode()
    for widget in ("heatmap", "pareto", "trend", "notes", "by_product"):
        assert f"/quality/?widget={widget}&amp;date_from={start}&amp;date_to={end}" in page
    assert f'name="date_from" value="{start}"' in page and f'name="date_to" value="{end}"' in page
    window = _in_scope_errors(as_of, since, until)
    everything = _in_scope_errors(as_of)
    assert 0 < len(window) < len(everything)

    trend = _chart(supervisor_client.get(f"/quality/?widget=trend&{query}", **HX).content.decode(), "chart-trend")
    assert sum(sum(ds["data"]) for ds in trend["data"]["datasets"]) == len(window)

    pareto = supervisor_client.get(f"/quality/?widget=pareto&{query}", **HX).content.decode()
    counts = Counter(e["description"] for e in window)
    bars = _chart(pareto, "chart-pareto")["data"]["datasets"][0]["data"]
    assert bars == sorted(counts.values(), reverse=True)[:len(bars)]

    heat = supervisor_client.get(f"/quality/?widget=heatmap&{query}", **HX).content.decode()
    phase_ids = set(OrderPhase.objects.values_list("id", flat=True))
    _rows_, _cols, grand = _heat_totals(heat)
    assert grand == sum(1 for e in window if e["culprit_order_phase_id"] in phase_ids)
    links = re.findall(r'<a class="heat-link" href="([^"]+)"', heat)
    assert links and all(f"since={start}&amp;until={end}" in u for u in links)

    notes = supervisor_client.get(f"/quality/?widget=notes&{query}", **HX).content.decode()
    assert re.search(rf"<strong>{len(window)}</strong>", notes)

    by_product = supervisor_client.get(f"/quality/?widget=by_product&{query}", **HX).content.decode()
    families, _products = _expected_by_family(as_of, everything, since, until)
    assert _rows(by_product, "family") == {str(k): v for k, v in families.items()}


@pytest.mark.parametrize("query, param", [
    ("date_from=2025-13-01", "date_from"), ("date_to=yesterday", "date_to"),
    ("widget=heatmap&date_from=1/2/2025", "date_from"), ("date_from=2025-05-02&date_to=2025-05-01", "date_to"),
])
def test_bad_period_is_a_400_naming_it(supervisor_client, ingested, query, param):
    response = supervisor_client.get(f"/quality/?{query}", **HX)
    assert response.status_code == 400 and f"<code>{param}</code>" in response.content.decode()


def test_pareto_key_keeps_full_descriptions(supervisor_client, ingested):
    html = supervisor_client.get("/quality/?widget=pareto", **HX).content.decode()
    config = _chart(html, "chart-pareto")
    titles = [unescape(t) for t in re.findall(r'<span class="pareto-desc" title="([^"]*)">', html)]
    counts = Counter(e["description"] for e in _in_scope_errors(ingested["as_of"]))
    assert len(titles) == len(config["data"]["labels"]) == len(config["data"]["datasets"][0]["data"]) > 0
    assert [counts[t] for t in titles] == config["data"]["datasets"][0]["data"]
    assert config["data"]["labels"] == [str(i + 1) for i in range(len(titles))]


def test_by_product_rows_link_to_their_errors(supervisor_client, ingested):
    as_of = ingested["as_of"]
    html = supervisor_client.get("/quality/?widget=by_product", **HX).content.decode()
    links = [unescape(u) for u in re.findall(r'<a class="errors-link" href="([^"]+)"', html)]
    family_of = dict(Product.objects.values_list("id", "family"))
    product_of = dict(ManufacturingOrder.objects.values_list("id", "product_id"))
    errors = [e for e in _in_scope_errors(as_of) if e["order_id"] in product_of]
    families = [u for u in links if "family=" in u]
    products = [u for u in links if "product=" in u]
    assert families and products
    for url in families + products[:5]:
        key, value = re.search(r"\?(family|product)=([^&]+)", url).groups()
        if key == "family":
            expected = sum(1 for e in errors if family_of.get(product_of[e["order_id"]], "UNKNOWN") == value)
        else:
            expected = sum(1 for e in errors if product_of[e["order_id"]] == int(value))
        listed = supervisor_client.get(url).content.decode()
        assert int(re.search(r'id="error-count" data-count="(\d+)"', listed).group(1)) == expected > 0, url
    bad = supervisor_client.get("/quality/errors/?family=nope")
    assert bad.status_code == 400 and "<code>family</code>" in bad.content.decode()
