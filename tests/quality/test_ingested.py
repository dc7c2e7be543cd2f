"""Quality and SmartInventory APIs on the generated workbook (the session's `ingested` fixture).

Every count and rate is recomputed in plain Python from the stored rows read through the ORM."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from inventory.phases import catalogue_phases, match_phases
from quality.selectors import wilson_interval
from tests.quality.builders import load_rows

LISBON = ZoneInfo("Europe/Lisbon")


@pytest.fixture
def data(db, ingested):
    rows = load_rows()
    rows["as_of"] = ingested["as_of"]
    return rows


def _errors(rows):
    return [e for e in rows["errors"] if e["event_time"] is None or e["event_time"] <= rows["as_of"]]


def _culprit_of(rows):
    by_id = {p["id"]: p for p in rows["order_phases"]}
    return lambda e: by_id[e["culprit_order_phase_id"]]["phase_id"] if e["culprit_order_phase_id"] in by_id else None


def test_overview_on_workbook(api_client, data, pinned_queries):
    with pinned_queries("quality.test_ingested.test_overview_on_workbook"):
        body = api_client.get("/api/quality/overview").json()
    assert body["as_of"] == data["as_of"].isoformat()
    errors = _errors(data)
    total = len(errors)
    assert body["total_errors"]["value"] == total > 0
    assert {s["severity"]: s["count"] for s in body["by_severity"]["value"]} == {
        s: sum(e["severity"] == s for e in errors) for s in (1, 2, 3)}
    assert {r["phase_id"]: r["count"] for r in body["by_found_phase"]["value"]} == dict(
        Counter(e["found_phase_id"] for e in errors))
    culprit_of = _culprit_of(data)
    culprits = Counter(culprit_of(e) for e in errors if culprit_of(e) is not None)
    assert {r["phase_id"]: r["count"] for r in body["by_culprit_phase"]["value"]} == dict(culprits)
    filled = sum(e["culprit_order_phase_id"] is not None for e in errors)
    # the generator fills the culprit on ~58.5% of rows, like the real file
    assert 0.45 < body["by_culprit_phase"]["culprit_filled_share"] == round(filled / total, 4) < 0.7
    months = Counter(e["event_time"].astimezone(LISBON).strftime("%Y-%m") for e in errors if e["event_time"])
    assert {r["month"]: r["count"] for r in body["trend_by_month"]["value"]} == dict(months)


def test_by_product_and_phase_on_workbook(api_client, data):
    as_of = data["as_of"]
    errors = _errors(data)
    per_order = Counter(e["order_id"] for e in errors)
    body = api_client.get("/api/quality/by-product").json()
    got = {p["product_id"]: p for p in body["products"]["value"]}
    orders = [o for o in data["orders"] if o["created_at"] is None or o["created_at"] <= as_of]
    for product_id in {o["product_id"] for o in orders}:
        mine = [o for o in orders if o["product_id"] == product_id]
        finished = [o for o in mine if o["finished_at"] and o["finished_at"] <= as_of]
        clean = sum(per_order[o["id"]] == 0 for o in finished)
        p = got[product_id]
        assert (p["orders"], p["orders_finished"], p["errors"]) == (
            len(mine), len(finished), sum(per_order[o["id"]] for o in mine))
        assert p["first_pass_yield"]["value"] == (round(clean / len(finished), 6) if finished else None)
        assert p["known_product"] == (product_id in data["products"])
    known = sum(o["product_id"] in data["products"] for o in orders)
    assert body["products"]["coverage"] == round(known / len(orders), 4) < 1  # orphan products exist
    body = api_client.get("/api/quality/by-phase").json()
    executions = Counter(p["phase_id"] for p in data["order_phases"] if p["is_done"] and p["ended_at"] <= as_of)
    found = Counter(e["found_phase_id"] for e in errors)
    for p in body["phases"]["value"]:
        assert p["executions"] == executions[p["phase_id"]]
        assert p["found"]["count"] == found[p["phase_id"]]


def test_heatmap_and_risk_on_workbook(api_client, data):
    errors = _errors(data)
    culprit_of = _culprit_of(data)
    body = api_client.get("/api/quality/heatmap").json()
    cells = Counter((e["found_phase_id"], culprit_of(e)) for e in errors if culprit_of(e) is not None)
    assert {(c["found_phase_id"], c["culprit_phase_id"]): c["count"] for c in body["matrix"]["value"]} == dict(cells)
    # risk at the phase where most errors are found, factory level
    phase = Counter(e["found_phase_id"] for e in errors).most_common(1)[0][0]
    body = api_client.get("/api/quality/risk", {"phase": phase, "severity": 2}).json()
    units = {p["order_id"] for p in data["order_phases"]
             if p["phase_id"] == phase and p["is_done"] and p["ended_at"] <= data["as_of"]}
    hits = {e["order_id"] for e in errors if e["severity"] >= 2 and e["found_phase_id"] == phase}
    k, n = len(units & hits), len(units)
    assert body["level"] == "factory"
    assert (body["probability"]["events"], body["probability"]["sample_size"]) == (k, n)
    assert body["probability"]["wilson_95"] == [round(x, 6) for x in wilson_interval(k, n)]
    # an unknown product falls back (family unknown -> factory) and says so
    unknown = next(o["product_id"] for o in data["orders"] if o["product_id"] not in data["products"])
    body = api_client.get("/api/quality/risk", {"phase": phase, "product": unknown}).json()
    assert body["level"] == "factory" and "not in the catalogue" in body["fallback_reasons"][0]


def test_escapes_on_workbook(api_client, data):
    body = api_client.get("/api/quality/escapes").json()
    errors = _errors(data)
    by_id = {p["id"]: p for p in data["order_phases"]}
    same_order = [e for e in errors if e["culprit_order_phase_id"] in by_id and e["found_order_phase_id"] in by_id
                  and by_id[e["culprit_order_phase_id"]]["order_id"] == by_id[e["found_order_phase_id"]]["order_id"]]
    cov = body["coverage"]
    assert cov["measured"] + cov["inconsistent_found_before_culprit"] == len(same_order) > 0
    assert sum(g["errors"] for g in body["by_culprit_phase"]["value"]) == cov["measured"]


def test_inventory_on_workbook(api_client, data):
    from tests.orders import independent
    from tests.orders.conftest import read_frames

    as_of = data["as_of"]
    # WIP = the active orders of the order state (open, neither stalled nor abandoned), restated independently.
    active = {s["order_id"] for s in independent.active(independent.order_states(read_frames(), as_of, snapshot_at=as_of))}
    wip = [o for o in data["orders"] if o["id"] in active]
    body = api_client.get("/api/smartinventory/wip").json()
    assert body["total_orders"]["value"] == len(wip) > 0
    assert {p["product_id"]: p["orders"] for p in body["by_product"]["value"]} == dict(
        Counter(o["product_id"] for o in wip))
    demould = match_phases(catalogue_phases(), "demoulding")
    assert demould.ids, "the generated catalogue names its demoulding phases"
    body = api_client.get("/api/smartinventory/wip_mass").json()
    passed = {p["order_id"] for p in data["order_phases"]
              if p["phase_id"] in demould.ids and p["ended_at"] is not None and p["ended_at"] <= as_of}
    mass = 0.0
    for o in wip:
        product = data["products"].get(o["product_id"])
        if product:
            weight = product["finished_weight_kg"] if o["id"] in passed else product["demould_weight_kg"]
            mass += weight or 0.0
    assert body["total_mass_kg"]["value"] == pytest.approx(round(mass, 3), abs=1e-3)
    assert body["orphans"]["orders"] == sum(o["product_id"] not in data["products"] for o in wip)
    gelcoat = match_phases(catalogue_phases(), "gelcoat")
    body = api_client.get("/api/smartinventory/gelcoat_theoretical_usage", {"period": "month"}).json()
    first = {}
    for p in data["order_phases"]:
        if p["phase_id"] in gelcoat.ids and p["ended_at"] is not None and p["ended_at"] <= as_of:
            first[p["order_id"]] = min(first.get(p["order_id"], p["ended_at"]), p["ended_at"])
    orders = {o["id"]: o for o in data["orders"]}
    qty = 0.0
    for order_id in first:
        product = data["products"].get(orders[order_id]["product_id"]) if order_id in orders else None
        if product and product["gelcoat_deck_qty"] is not None and product["gelcoat_hull_qty"] is not None:
            qty += product["gelcoat_deck_qty"] + product["gelcoat_hull_qty"]
    assert sum(s["orders"] for s in body["series"]["value"]) == len(first) > 0
    assert body["total_theoretical_qty"]["value"] == pytest.approx(round(qty, 4), abs=1e-3)
