"""Quality page on the ingested demo workbook: heatmap counts, Pareto and trend recomputed from the error rows."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from django.contrib.auth.models import User

from orders.models import OrderPhase
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
    totals = [int(x) for x in re.findall(r'<td class="num"><strong>(\d+)</strong></td>', heat)]
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
