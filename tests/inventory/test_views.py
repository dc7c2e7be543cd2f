"""Inventory page on the ingested demo workbook: theoretical labels, WIP mass by phase, gelcoat by month."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sclient(client, db):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-123"))
    return client


def _chart(html: str, chart_id: str) -> dict:
    return json.loads(re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_inventory_page_is_labelled_theoretical(sclient, ingested, pinned_queries):
    with pinned_queries("inventory.test_views.test_inventory_page_is_labelled_theoretical"):
        html = sclient.get("/inventory/").content.decode()
    assert html.count("<h1") == 1 and "theoretical-banner" in html


def test_wip_mass_and_gelcoat_widgets(sclient, ingested, pinned_queries):
    from inventory.selectors import gelcoat_theoretical_usage, wip_mass
    from orders.models import ManufacturingOrder, Product

    as_of = ingested["as_of"]
    with pinned_queries("inventory.test_views.test_wip_mass_and_gelcoat_widgets"):
        mass = sclient.get("/inventory/?widget=mass", **HX).content.decode()
    payload = wip_mass(as_of=as_of)
    config = _chart(mass, "chart-mass")
    assert sum(config["data"]["datasets"][0]["data"]) == pytest.approx(payload["total_mass_kg"]["value"], abs=0.01)
    # independent upper bound: every WIP order of a known product weighs at most its heavier standard weight
    weights = {p["id"]: max(p["demould_weight_kg"] or 0, p["finished_weight_kg"] or 0)
               for p in Product.objects.values("id", "demould_weight_kg", "finished_weight_kg")}
    open_orders = [o for o in ManufacturingOrder.objects.values("product_id", "created_at", "finished_at")
                   if (o["created_at"] is None or o["created_at"] <= as_of) and (o["finished_at"] is None or o["finished_at"] > as_of)]
    assert 0 < payload["total_mass_kg"]["value"] <= sum(weights.get(o["product_id"], 0) for o in open_orders) + 1e-6
    assert "basis-theoretical" in mass
    # the WIP is the order state's active orders; the stalled and abandoned ones are named as left out
    from orders.selectors import active_orders_at, open_orders_at

    assert payload["total_mass_kg"]["wip_orders"] == len(active_orders_at(as_of=as_of))
    states = [r["state"] for r in open_orders_at(as_of=as_of)]
    excluded = re.search(r'id="wip-mass-excluded">(.*?)</p>', mass, re.S).group(1)
    assert re.findall(r"\d+", excluded) == [str(states.count("stalled")), str(states.count("abandoned"))]

    gel = sclient.get("/inventory/?widget=gelcoat", **HX).content.decode()
    series = gelcoat_theoretical_usage(as_of=as_of, period="month")
    config = _chart(gel, "chart-gelcoat")
    shown = sum(config["data"]["datasets"][0]["data"]) + sum(config["data"]["datasets"][1]["data"])
    assert shown == pytest.approx(series["total_theoretical_qty"]["value"], rel=1e-6)
    assert "basis-theoretical" in gel

    unsupported = sclient.get("/inventory/?widget=unsupported", **HX).content.decode()
    assert unsupported.count('class="not-supported"') == 2
