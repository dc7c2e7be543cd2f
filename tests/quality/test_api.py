"""Quality API on ORM-built rows: every count and rate equals a plain-Python computation over the rows."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from zoneinfo import ZoneInfo

import pytest

from quality.selectors import wilson_interval
from tests.quality.builders import AS_OF, UNKNOWN_PRODUCT, build_factory, load_rows

pytestmark = pytest.mark.django_db

LISBON = ZoneInfo("Europe/Lisbon")
Q = {"as_of": AS_OF.isoformat()}


@pytest.fixture
def rows(db):
    build_factory()
    return load_rows()


def _errors_in_scope(rows):
    return [e for e in rows["errors"] if e["event_time"] is None or e["event_time"] <= AS_OF]


def _culprit_phase(rows):
    by_id = {p["id"]: p for p in rows["order_phases"]}
    return lambda e: by_id[e["culprit_order_phase_id"]]["phase_id"] if e["culprit_order_phase_id"] in by_id else None


def test_overview_matches_rows(api_client, rows, pinned_queries):
    with pinned_queries("quality.test_api.test_overview_matches_rows"):
        body = api_client.get("/api/quality/overview", Q | {"top": 3}).json()
    errors = _errors_in_scope(rows)
    total = len(errors)
    order_ids = {o["id"] for o in rows["orders"]}
    orders = [o for o in rows["orders"] if o["created_at"] is None or o["created_at"] <= AS_OF]
    on_known = sum(e["order_id"] in order_ids for e in errors)
    assert body["total_errors"]["value"] == total and total > 50
    assert body["orders"] == len(orders)
    assert body["errors_per_order"]["value"] == round(on_known / len(orders), 4)
    assert body["errors_per_order"]["coverage"] == round(on_known / total, 4) < 1
    sev = Counter(e["severity"] for e in errors)
    assert {s["severity"]: s["count"] for s in body["by_severity"]["value"]} == {s: sev.get(s, 0) for s in (1, 2, 3)}
    found = Counter(e["found_phase_id"] for e in errors)
    assert {r["phase_id"]: r["count"] for r in body["by_found_phase"]["value"]} == dict(found)
    culprit_of = _culprit_phase(rows)
    culprits = Counter(culprit_of(e) for e in errors if culprit_of(e) is not None)
    assert {r["phase_id"]: r["count"] for r in body["by_culprit_phase"]["value"]} == dict(culprits)
    filled = sum(e["culprit_order_phase_id"] is not None for e in errors)
    assert body["by_culprit_phase"]["culprit_filled"] == filled
    assert body["by_culprit_phase"]["coverage"] == round(sum(culprits.values()) / total, 4)
    assert sum(culprits.values()) == filled - 1  # the dangling culprit id resolves to nothing
    months = Counter(e["event_time"].astimezone(LISBON).strftime("%Y-%m") for e in errors if e["event_time"])
    assert {r["month"]: r["count"] for r in body["trend_by_month"]["value"]} == dict(months)
    descriptions = sorted(Counter(e["description"] for e in errors).items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(r["description"], r["count"]) for r in body["pareto"]["value"]] == descriptions
    assert body["pareto"]["value"][-1]["cumulative_share"] == round(sum(n for _, n in descriptions) / total, 4)
    for key in ("total_errors", "errors_per_order", "by_severity", "by_found_phase", "by_culprit_phase",
                "trend_by_month", "pareto"):
        assert body[key]["basis"] == "observed"


def test_overview_respects_as_of(api_client, rows):
    cut = AS_OF.replace(month=6, day=1)
    body = api_client.get("/api/quality/overview", {"as_of": cut.isoformat()}).json()
    expected = sum(1 for e in rows["errors"] if e["event_time"] <= cut)
    assert body["total_errors"]["value"] == expected < len(rows["errors"])


def test_by_phase_matches_rows(api_client, rows, pinned_queries):
    with pinned_queries("quality.test_api.test_by_phase_matches_rows"):
        body = api_client.get("/api/quality/by-phase", Q).json()
    errors = _errors_in_scope(rows)
    executions = Counter(p["phase_id"] for p in rows["order_phases"] if p["is_done"] and p["ended_at"] <= AS_OF)
    found = Counter(e["found_phase_id"] for e in errors)
    culprit_of = _culprit_phase(rows)
    caused = Counter(culprit_of(e) for e in errors if culprit_of(e) is not None)
    got = {p["phase_id"]: p for p in body["phases"]["value"]}
    assert set(got) == set(executions) | set(found) | set(caused)
    for phase_id, p in got.items():
        assert p["executions"] == executions[phase_id]
        assert p["found"]["count"] == found[phase_id]
        assert p["caused"]["count"] == caused[phase_id]
        if executions[phase_id]:
            assert p["found"]["rate_per_execution"] == round(found[phase_id] / executions[phase_id], 6)
            assert p["caused"]["rate_per_execution"] == round(caused[phase_id] / executions[phase_id], 6)
        sev = Counter(e["severity"] for e in errors if e["found_phase_id"] == phase_id)
        assert [s["count"] for s in p["found"]["by_severity"]] == [sev[1], sev[2], sev[3]]
    assert [p["sequence"] for p in body["phases"]["value"]] == sorted(p["sequence"] for p in body["phases"]["value"])


def test_by_product_and_first_pass_yield(api_client, rows, pinned_queries):
    with pinned_queries("quality.test_api.test_by_product_and_first_pass_yield"):
        body = api_client.get("/api/quality/by-product", Q).json()
    errors = _errors_in_scope(rows)
    per_order = Counter(e["order_id"] for e in errors)
    expected = defaultdict(lambda: {"orders": 0, "finished": 0, "clean": 0, "errors": 0})
    for o in rows["orders"]:
        acc = expected[o["product_id"]]
        acc["orders"] += 1
        acc["errors"] += per_order[o["id"]]
        if o["finished_at"] and o["finished_at"] <= AS_OF:
            acc["finished"] += 1
            acc["clean"] += per_order[o["id"]] == 0
    got = {p["product_id"]: p for p in body["products"]["value"]}
    assert set(got) == set(expected)
    for product_id, acc in expected.items():
        p = got[product_id]
        assert (p["orders"], p["orders_finished"], p["errors"]) == (acc["orders"], acc["finished"], acc["errors"])
        assert p["errors_per_order"] == round(acc["errors"] / acc["orders"], 6)
        fpy = p["first_pass_yield"]
        assert fpy["basis"] == "observed"
        assert fpy["finished_without_error"] == acc["clean"]
        assert fpy["value"] == (round(acc["clean"] / acc["finished"], 6) if acc["finished"] else None)
    assert got[UNKNOWN_PRODUCT]["family"] == "UNKNOWN" and got[UNKNOWN_PRODUCT]["known_product"] is False
    k1 = next(f for f in body["families"]["value"] if f["family"] == "K1")
    assert k1["orders"] == expected[1]["orders"] + expected[4]["orders"]
    known_share = sum(a["orders"] for pid, a in expected.items() if pid != UNKNOWN_PRODUCT) / len(rows["orders"])
    assert body["products"]["coverage"] == round(known_share, 4)
    order_ids = {o["id"] for o in rows["orders"]}
    assert body["errors_on_unknown_orders"] == sum(e["order_id"] not in order_ids for e in errors) == 1


def test_heatmap_matches_rows(api_client, rows, pinned_queries):
    with pinned_queries("quality.test_api.test_heatmap_matches_rows"):
        body = api_client.get("/api/quality/heatmap", Q).json()
    errors = _errors_in_scope(rows)
    culprit_of = _culprit_phase(rows)
    cells = Counter((e["found_phase_id"], culprit_of(e)) for e in errors if culprit_of(e) is not None)
    got = {(c["found_phase_id"], c["culprit_phase_id"]): c["count"] for c in body["matrix"]["value"]}
    assert got == dict(cells)
    assert body["matrix"]["coverage"] == round(sum(cells.values()) / len(errors), 4)
    assert {p["phase_id"] for p in body["phases"]} == {k for cell in cells for k in cell}


def test_escapes_match_rows(api_client, rows, pinned_queries):
    with pinned_queries("quality.test_api.test_escapes_match_rows"):
        body = api_client.get("/api/quality/escapes", Q).json()
    errors = _errors_in_scope(rows)
    by_id = {p["id"]: p for p in rows["order_phases"]}
    rank = {}
    per_order = defaultdict(list)
    for p in rows["order_phases"]:
        per_order[p["order_id"]].append(p)
    for plist in per_order.values():
        plist.sort(key=lambda p: (p["sequence"], p["started_at"] is None, p["started_at"] or AS_OF, p["id"]))
        for i, p in enumerate(plist):
            rank[p["id"]] = i
    orders = {o["id"]: o for o in rows["orders"]}
    groups = defaultdict(list)
    for e in errors:
        c, f = by_id.get(e["culprit_order_phase_id"]), by_id.get(e["found_order_phase_id"])
        if not c or not f or c["order_id"] != f["order_id"]:
            continue
        steps = rank[f["id"]] - rank[c["id"]]
        if steps < 0:
            continue
        hours = ((f["ended_at"] or f["started_at"]) - (c["ended_at"] or c["started_at"])).total_seconds() / 3600
        product = rows["products"].get(orders[c["order_id"]]["product_id"]) if c["order_id"] in orders else None
        weight = product["finished_weight_kg"] if product else None
        groups[c["phase_id"]].append((steps, hours, weight, e["severity"]))
    got = {g["culprit_phase_id"]: g for g in body["by_culprit_phase"]["value"]}
    assert set(got) == set(groups)
    for phase_id, items in groups.items():
        g = got[phase_id]
        assert g["errors"] == len(items)
        assert g["escaped_errors"] == sum(s > 0 for s, *_ in items)
        assert g["phases_between"]["sum"] == sum(s for s, *_ in items)
        assert g["hours_between"]["value"]["avg"] == round(sum(h for _, h, *_ in items) / len(items), 2)
        mass = sum(w * s for s, _, w, _ in items if w is not None)
        assert math.isclose(g["mass"]["value"]["kg_phases"] or 0, round(mass, 3))
        assert g["mass"]["basis"] == "theoretical"
    assert body["coverage"]["measured"] == sum(len(v) for v in groups.values())
    sums = [g["phases_between"]["sum"] for g in body["by_culprit_phase"]["value"]]
    assert sums == sorted(sums, reverse=True)
    detail = Counter((d["culprit_phase_id"], d["severity"]) for d in body["by_culprit_phase_and_severity"]["value"])
    assert set(detail) == {(pid, s) for pid, items in groups.items() for *_, s in items}


def test_wilson_reference_value():
    low, high = wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    # the formula, written out once more
    z, n, p = 1.959963984540054, 100, 0.1
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert math.isclose(low, centre - half) and math.isclose(high, centre + half)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 20)[0] == 0.0


def _risk_expected(rows, *, phase, severity, scope, attribution="found"):
    orders = {o["id"]: o for o in rows["orders"]}
    units = {p["order_id"] for p in rows["order_phases"]
             if p["phase_id"] == phase and p["is_done"] and p["ended_at"] <= AS_OF}
    units = {u for u in units if scope(orders.get(u))}
    culprit_of = _culprit_phase(rows)
    hits = {e["order_id"] for e in _errors_in_scope(rows) if e["severity"] >= severity
            and (culprit_of(e) if attribution == "culprit" else e["found_phase_id"]) == phase}
    return len(units & hits), len(units)


def test_risk_levels_and_fallback(api_client, rows, pinned_queries):
    family_of = {pid: p["family"] for pid, p in rows["products"].items()}
    # product level: product 1 has enough finished inspections
    with pinned_queries("quality.test_api.test_risk_levels_and_fallback"):
        body = api_client.get("/api/quality/risk", Q | {"phase": 60, "product": 1, "severity": 1,
                                                         "min_sample": 5}).json()
    k, n = _risk_expected(rows, phase=60, severity=1, scope=lambda o: o and o["product_id"] == 1)
    assert body["level"] == "product" and n >= 5
    assert (body["probability"]["events"], body["probability"]["sample_size"]) == (k, n)
    assert body["probability"]["value"] == round(k / n, 6)
    assert body["probability"]["wilson_95"] == [round(x, 6) for x in wilson_interval(k, n)]
    # family fallback: the product's sample is under min_sample
    body = api_client.get("/api/quality/risk", Q | {"phase": 60, "product": 4, "severity": 2,
                                                     "min_sample": 20}).json()
    k4, n4 = _risk_expected(rows, phase=60, severity=2, scope=lambda o: o and o["product_id"] == 4)
    kf, nf = _risk_expected(rows, phase=60, severity=2, scope=lambda o: o and family_of.get(o["product_id"]) == "K1")
    assert n4 < 20 <= nf
    assert body["level"] == "family" and body["level_key"] == "K1"
    assert (body["probability"]["events"], body["probability"]["sample_size"]) == (kf, nf)
    assert body["levels_tried"][0] == {"level": "product", "key": 4, "n": n4, "k": k4, "known": True}
    # unknown product: straight to the factory (its family is unknown)
    body = api_client.get("/api/quality/risk", Q | {"phase": 40, "product": UNKNOWN_PRODUCT, "severity": 3}).json()
    ka, na = _risk_expected(rows, phase=40, severity=3, scope=lambda o: True)
    assert body["level"] == "factory"
    assert any("not in the catalogue" in r for r in body["fallback_reasons"])
    assert (body["probability"]["events"], body["probability"]["sample_size"]) == (ka, na)
    # culprit attribution
    body = api_client.get("/api/quality/risk", Q | {"phase": 30, "family": "K2", "attribution": "culprit",
                                                     "min_sample": 1}).json()
    kc, nc = _risk_expected(rows, phase=30, severity=1, attribution="culprit",
                            scope=lambda o: o and family_of.get(o["product_id"]) == "K2")
    assert body["level"] == "family"
    assert (body["probability"]["events"], body["probability"]["sample_size"]) == (kc, nc) and kc > 0


def test_risk_without_phase_is_the_table_by_family_and_phase(api_client, rows):
    family_of = {pid: p["family"] for pid, p in rows["products"].items()}
    orders = {o["id"]: o for o in rows["orders"]}
    response = api_client.get("/api/quality/risk", Q)
    assert response.status_code == 200
    body = response.json()
    cells = {(r["family"], r["phase"]["phase_id"]): r for r in body["rows"]}
    pairs = {(family_of.get((orders.get(p["order_id"]) or {}).get("product_id")), p["phase_id"])
             for p in rows["order_phases"] if p["is_done"] and p["ended_at"] <= AS_OF}
    assert set(cells) == pairs and len({f for f, _ in pairs}) >= 2
    for (family, phase), cell in cells.items():
        k, n = _risk_expected(rows, phase=phase, severity=1,
                              scope=lambda o, family=family: family_of.get(o and o["product_id"]) == family)
        assert (cell["probability"]["events"], cell["probability"]["sample_size"]) == (k, n)
        assert cell["probability"]["value"] == round(k / n, 6) and cell["probability"]["basis"] == "observed"
        assert cell["probability"]["wilson_95"] == [round(x, 6) for x in wilson_interval(k, n)]
        assert cell["enough_sample"] == (n >= 30)
    assert any(c["probability"]["events"] for c in cells.values())
    # a phase's single answer at the family level equals the table's cell
    single = api_client.get("/api/quality/risk", Q | {"phase": 60, "family": "K1", "min_sample": 1}).json()
    assert single["level"] == "family"
    assert single["probability"]["sample_size"] == cells[("K1", 60)]["probability"]["sample_size"]
    # family and product narrow the table; severity and attribution apply as for one phase
    k1 = api_client.get("/api/quality/risk", Q | {"family": "K1"}).json()["rows"]
    assert {(r["family"], r["phase"]["phase_id"]) for r in k1} == {c for c in cells if c[0] == "K1"}
    product = api_client.get("/api/quality/risk", Q | {"product": 1, "severity": 2, "attribution": "culprit"}).json()
    culprit_of = _culprit_phase(rows)
    for row in product["rows"]:
        k, n = _risk_expected(rows, phase=row["phase"]["phase_id"], severity=2, attribution="culprit",
                              scope=lambda o: o and o["product_id"] == 1)
        assert (row["probability"]["events"], row["probability"]["sample_size"]) == (k, n)
    assert product["rows"] and {r["family"] for r in product["rows"]} == {family_of[1]}
    assert any(culprit_of(e) for e in rows["errors"])
    assert api_client.get("/api/quality/risk", Q | {"family": "nope"}).status_code == 400


def test_heatmap_not_supported_without_culprits(api_client, rows):
    from quality.models import QualityError

    QualityError.objects.update(culprit_order_phase_id=None)
    for path in ("/api/quality/heatmap", "/api/quality/escapes"):
        body = api_client.get(path, Q).json()
        assert body["status"] == "NOT_SUPPORTED_BY_DATA"
        assert "Erro_FaseOfCulpada" in body["reason"]


def test_heatmap_and_overview_take_the_period_of_the_page(api_client, rows):
    """date_from / date_to (days, both included, Lisbon time) narrow the API exactly as the quality page does."""
    from datetime import datetime, time, timedelta

    dated = sorted(e["event_time"] for e in _errors_in_scope(rows) if e["event_time"] is not None)
    day_from = dated[len(dated) // 4].astimezone(LISBON).date()
    day_to = dated[3 * len(dated) // 4].astimezone(LISBON).date()
    since = datetime.combine(day_from, time.min, tzinfo=LISBON)
    until = datetime.combine(day_to + timedelta(days=1), time.min, tzinfo=LISBON)
    inside = [e for e in _errors_in_scope(rows) if e["event_time"] is not None and since <= e["event_time"] < until]
    assert 0 < len(inside) < len(_errors_in_scope(rows))
    period = Q | {"date_from": day_from.isoformat(), "date_to": day_to.isoformat()}
    culprit_of = _culprit_phase(rows)
    body = api_client.get("/api/quality/heatmap", period).json()
    got = {(c["found_phase_id"], c["culprit_phase_id"]): c["count"] for c in body["matrix"]["value"]}
    assert got == dict(Counter((e["found_phase_id"], culprit_of(e)) for e in inside if culprit_of(e) is not None))
    overview = api_client.get("/api/quality/overview", period).json()
    whole = api_client.get("/api/quality/overview", Q).json()
    assert overview != whole
    assert api_client.get("/api/quality/by-product", period).status_code == 200


@pytest.mark.parametrize("query, field", [({"date_from": "2025-02-30"}, "date_from"), ({"date_to": "tomorrow"}, "date_to"),
                                          ({"date_from": "2025-03-02", "date_to": "2025-03-01"}, "date_to")])
def test_a_bad_period_is_a_400_naming_the_parameter(api_client, rows, query, field):
    for path in ("/api/quality/overview", "/api/quality/by-product", "/api/quality/heatmap"):
        response = api_client.get(path, Q | query)
        assert response.status_code == 400 and field in response.json(), (path, response.json())
