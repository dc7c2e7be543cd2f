"""The PRODPLAN and KPI API: paths, pagination, filters, permissions, query counts, schema."""

from __future__ import annotations

import pandas as pd
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.orders import independent as ind
from tests.orders.builders import AS_OF

pytestmark = pytest.mark.django_db
AS_OF_PARAM = {"as_of": AS_OF.isoformat()}


def get(client, url, **params):
    response = client.get(url, {**AS_OF_PARAM, **params})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def warm_as_of(client) -> None:
    """Compute the per-as-of values the production code caches (lead-time and stall thresholds at AS_OF, phase
    names, the data's as-of) with one small request, so query counts measure the endpoint itself."""
    get(client, "/api/prodplan/orders", page_size=1)


def walk(client, **params) -> list[dict]:
    """Every order of the list endpoint, following the cursor links."""
    seen = []
    page = get(client, "/api/prodplan/orders", **params)
    while True:
        seen.extend(page["results"])
        if not page["next"]:
            return seen
        response = client.get(page["next"])
        assert response.status_code == 200
        page = response.json()


def test_pagination_visits_every_order_exactly_once(factory, frames, api_client):
    rows = walk(api_client, page_size=7)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(frames["orders"])
    assert ids == sorted(ids, reverse=True)


def test_order_list_query_count_does_not_grow_with_page_size(factory, api_client):
    warm_as_of(api_client)
    counts = {}
    for params in ({"page_size": 5}, {"page_size": 100}, {"page_size": 100, "state": "waiting"}):
        with CaptureQueriesContext(connection) as captured:
            data = get(api_client, "/api/prodplan/orders", **params)
        counts[tuple(params.items())] = len(captured)
        if "state" not in params:
            assert len(data["results"]) == min(params["page_size"], factory["orders"])
    # the page's rows, then one query for their states (the state filter is a subquery of the same query)
    assert set(counts.values()) == {2}, counts


def test_order_list_fields_are_the_state_at_as_of(factory, frames, api_client):
    expected = ind.order_states(frames, AS_OF)
    rows = walk(api_client, page_size=100)
    assert {r["id"] for r in rows} == set(expected)
    for r in rows:
        want = expected[r["id"]]
        assert (r["state"], r["status"], r["status_basis"]["threshold_scope"]) == (want["state"], want["status"], want["threshold_scope"])
        position = r["position"]
        assert position["state"] == want["state"] and position["placement_basis"] == want["placement_basis"]
        if want["state"] == "finished":
            assert r["current_phase"] is None and r["finished"] is not None and r["age_days"] is None
            continue
        assert (position["phase"] or {}).get("id") == want["phase_id"] == (r["current_phase"] or {}).get("id")
        assert pd.Timestamp(position["since"]) == want["since"]
        assert position["in_state_days"] == pytest.approx((AS_OF - want["since"]).total_seconds() / 86400, abs=1e-3)
        assert r["age_days"] == pytest.approx(want["age_days"], abs=1e-3)
        assert r["status_basis"]["late_days"] == pytest.approx(want["late_days"], abs=1e-3)
        assert position["stalled_while"] == (want["flow_state"] if want["state"] == "stalled" else None)


def test_order_filters(factory, frames, api_client):
    orders = frames["orders"]
    expected = ind.order_states(frames, AS_OF)
    orphans = walk(api_client, family="UNKNOWN", page_size=100)
    assert {r["id"] for r in orphans} == set(orders.loc[orders["product_id"] == 999, "id"])
    assert all(r["product"] == {"id": 999, "name": "unknown product", "family": "UNKNOWN", "is_known": False} for r in orphans)
    k2 = walk(api_client, family="K2", page_size=100)
    assert {r["id"] for r in k2} == set(orders.loc[orders["product_id"].isin([102, 103]), "id"])
    assert {r["id"] for r in walk(api_client, product=101, page_size=100)} == set(orders.loc[orders["product_id"] == 101, "id"])
    for key in ("state", "status"):
        for wanted in {s[key] for s in expected.values()}:
            got = walk(api_client, page_size=100, **{key: wanted})
            assert {r["id"] for r in got} == {oid for oid, s in expected.items() if s[key] == wanted}, (key, wanted)
            assert all(r[key] == wanted for r in got)
    stalled = walk(api_client, state="stalled", page_size=100)
    assert stalled and all(r["status"] == "STALLED" and r["position"]["in_state_days"] > r["position"]["stall_threshold_days"]
                           for r in stalled)
    late = walk(api_client, status="LATE", page_size=100)
    assert all(r["state"] in ind.ACTIVE and r["age_days"] > r["status_basis"]["late_days"] for r in late)
    both = walk(api_client, page_size=100, state=["stalled", "waiting"])
    assert {r["id"] for r in both} == {oid for oid, s in expected.items() if s["state"] in ("stalled", "waiting")}
    done = walk(api_client, status="DONE", page_size=100)
    assert len(done) == orders["finished_at"].notna().sum()
    assert all(r["lead_time_days"] is not None and r["age_days"] is None for r in done)
    created_after = "2025-10-01T00:00:00+00:00"
    recent = walk(api_client, created_after=created_after, page_size=100)
    assert {r["id"] for r in recent} == set(orders.loc[orders["created_at"] >= created_after, "id"])
    assert [r["id"] for r in walk(api_client, q="12")] == sorted(
        [i for i in orders["id"] if str(i).startswith("12")], reverse=True)
    placed = {s["phase_id"] for s in expected.values() if s["phase_id"] is not None}
    assert placed
    for phase_id in placed:
        at_phase = walk(api_client, current_phase=phase_id, page_size=100)
        assert {r["id"] for r in at_phase} == {oid for oid, s in expected.items() if s["phase_id"] == phase_id}
        assert all(r["current_phase"]["id"] == phase_id for r in at_phase)


def test_filters_and_fields_follow_a_past_as_of(factory, frames, api_client):
    from datetime import timedelta

    past = AS_OF - timedelta(days=60)
    expected = ind.order_states(frames, past)
    rows = walk(api_client, page_size=100, as_of=past.isoformat())
    assert {r["id"]: r["state"] for r in rows} == {oid: s["state"] for oid, s in expected.items()}
    reopened = {oid for oid, s in expected.items() if s["state"] != "finished"} & set(orders_finished(frames))
    assert reopened and all(r["finished"] is None for r in rows if r["id"] in reopened)
    waiting = walk(api_client, page_size=100, state="waiting", as_of=past.isoformat())
    assert {r["id"] for r in waiting} == {oid for oid, s in expected.items() if s["state"] == "waiting"}


def orders_finished(frames) -> list[int]:
    orders = frames["orders"]
    return [int(i) for i in orders.loc[orders["finished_at"].notna(), "id"]]


def test_order_detail_and_timeline(factory, frames, api_client, pinned_queries):
    phases = frames["phases"]
    order_id = int(phases.loc[phases["is_rework"], "order_id"].iloc[0])
    warm_as_of(api_client)
    with pinned_queries("orders.test_api.test_order_detail_and_timeline"):  # the order, its state row, its counts
        detail = get(api_client, f"/api/prodplan/orders/{order_id}")
    mine = phases[phases["order_id"] == order_id]
    assert detail["counts"]["phases"] == len(mine)
    assert detail["counts"]["phases_started"] == (mine["started_at"] <= AS_OF).sum()
    assert detail["counts"]["phases_done"] == (mine["ended_at"] <= AS_OF).sum()
    assert detail["counts"]["reworks"] == int((mine["is_rework"] & (mine["started_at"] <= AS_OF)).sum())
    errors = frames["errors"]
    assert detail["counts"]["errors"] == (errors["order_id"] == order_id).sum()
    assert detail["state"] == ind.order_states(frames, AS_OF)[order_id]["state"]
    with pinned_queries("orders.test_api.test_order_detail_and_timeline[2]"):  # the order, its phases with team sizes, the product's route
        timeline = get(api_client, f"/api/prodplan/orders/{order_id}/phases")
    assert [p["id"] for p in timeline["phases"]] == list(mine.sort_values(["sequence", "id"])["id"])
    team = frames["assignments"].groupby("order_phase_id").size()
    for p in timeline["phases"]:
        assert p["team_size"] == (int(team[p["id"]]) if p["id"] in team.index else None)
    assert api_client.get("/api/prodplan/orders/987654321").status_code == 404


def test_timeline_reports_missing_and_extra_steps(factory, frames, api_client):
    from orders.models import RouteStep

    orders, phases = frames["orders"], frames["phases"]
    routes, sequences = {}, {}
    for step in RouteStep.objects.values("product_id", "phase_id", "sequence"):
        routes.setdefault(step["product_id"], set()).add(step["phase_id"])
        sequences.setdefault(step["product_id"], []).append((step["sequence"], step["phase_id"]))
    checked = unstarted = 0
    for order in orders[orders["product_id"] != 999].itertuples():
        mine = phases[phases["order_id"] == order.id]
        # a step is observed when it started or ended by as-of; rows not started yet do not count
        reached = mine[(mine["started_at"] <= AS_OF) | (mine["ended_at"] <= AS_OF)]
        observed = set(reached["phase_id"])
        standard = routes[order.product_id]
        if observed != standard:
            data = get(api_client, f"/api/prodplan/orders/{order.id}/phases")["route_comparison"]
            # missing: not executed though the order finished or went past the step; later steps are pending
            finished = pd.notna(order.finished_at) and order.finished_at <= AS_OF
            furthest = max((q for q, ph in sequences[order.product_id] if ph in observed), default=None)
            missing = {ph for q, ph in sequences[order.product_id]
                       if ph not in observed and (finished or (furthest is not None and q < furthest))}
            assert {s["phase_id"] for s in data["missing_steps"]} == missing
            assert {s["phase_id"] for s in data["extra_steps"]} == observed - standard
            checked += 1
            unstarted += len(reached) < len(mine)
    assert checked >= 3 and unstarted >= 1


@pytest.mark.parametrize(
    "url",
    [
        "/api/prodplan/routes/101",
        "/api/prodplan/schedule/current",
        "/api/prodplan/bottlenecks",
        "/api/prodplan/risk_queue",
        "/api/prodplan/orders/states",
        "/api/prodplan/orders/stalled",
        "/api/kpis/overview",
        "/api/kpis/by-phase",
        "/api/kpis/by-product",
        "/api/kpis/by-employee",
    ],
)
def test_analytic_endpoints_answer_with_pinned_queries(factory, api_client, pinned_queries, url):
    warm_as_of(api_client)
    with pinned_queries(f"orders.api.analytic[{url}]"):
        data = get(api_client, url)
    assert data
    with pinned_queries(f"orders.api.analytic.cached[{url}]"):  # second call: the versioned cache answers
        assert get(api_client, url) == data


def test_figures_carry_basis_and_coverage(factory, api_client):
    overview = get(api_client, "/api/kpis/overview")
    for key in ("lead_time_days", "throughput_per_week", "wip", "on_time_rate", "rework_rate"):
        assert overview[key]["basis"] in {"observed", "theoretical", "imputed"}
        assert "coverage" in overview[key]
    assert "stalled_orders_excluded" in overview["wip"]
    bottlenecks = get(api_client, "/api/prodplan/bottlenecks")
    assert bottlenecks["basis"] == "observed" and 0 <= bottlenecks["coverage"] <= 1
    for phase in bottlenecks["phases"]:
        assert phase["queue_time_hours"]["basis"] == "observed"
        assert phase["queue_time_hours"]["window_days"] == bottlenecks_window() and "n" in phase["queue_time_hours"]
        assert phase["throughput_per_day"]["basis"] == "observed"
        assert phase["utilisation"]["basis"] == "observed" and "capacity_observed" in phase["utilisation"]
        assert "expected_wait_days" not in phase  # Little's law on hindsight averages is gone
    schedule = get(api_client, "/api/prodplan/schedule/current")
    assert schedule["basis"] == "observed" and schedule["placement"]["basis"] == "observed"


def bottlenecks_window() -> int:
    from orders.selectors import BOTTLENECK_WINDOW_DAYS

    return BOTTLENECK_WINDOW_DAYS


def test_risk_queue_reasons_are_coded(factory, frames, api_client):
    queue = get(api_client, "/api/prodplan/risk_queue", limit=1000)
    active = {s["order_id"] for s in ind.active(ind.order_states(frames, AS_OF))}
    assert {r["order_id"] for r in queue["orders"]} == active
    codes = {"older_than_p90", "older_than_p75", "at_bottleneck", "reworks", "product_defects"}
    assert all(reason["code"] in codes for r in queue["orders"] for reason in r["reasons"])
    stalled = get(api_client, "/api/prodplan/orders/stalled")
    assert queue["stalled"]["count"] == stalled["count"] == len(stalled["orders"]) > 0
    assert not active & {s["order_id"] for s in stalled["orders"]}


def test_kpi_date_range_validation(factory, api_client):
    assert api_client.get("/api/kpis/overview", {"date_from": "2025-12-01", "date_to": "2025-11-01"}).status_code == 400
    narrow = get(api_client, "/api/kpis/overview", date_from="2025-12-01", date_to="2025-12-15")
    wide = get(api_client, "/api/kpis/overview", date_from="2025-03-01", date_to="2025-12-15")
    assert narrow["finished_orders"] < wide["finished_orders"]


def test_by_employee_names_need_the_permission(db, api_client):
    from tests.orders.builders import build_factory

    build_factory(match_rate=1.0)
    reader = get(api_client, "/api/kpis/by-employee")  # a supervisor: no employee-name permission
    assert reader["status"] == "OK"
    assert all("name" not in e for e in reader["employees"])
    user = User.objects.create_user("viewer", password="x")
    api_client.force_authenticate(user)
    assert all("name" not in e for e in get(api_client, "/api/kpis/by-employee")["employees"])
    user.user_permissions.add(Permission.objects.get(codename="view_employee_name"))
    user = User.objects.get(pk=user.pk)  # drop the permission cache
    api_client.force_authenticate(user)
    named = get(api_client, "/api/kpis/by-employee")["employees"]
    assert named and all(e["name"].startswith("Person ") for e in named)


def test_by_employee_not_supported_is_http_200(factory, api_client):
    data = get(api_client, "/api/kpis/by-employee")
    assert data["status"] == "NOT_SUPPORTED_BY_DATA"
    assert 0.2 < data["measured"] < 0.4


def test_schema_documents_the_endpoints(api_client):
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in ("/api/prodplan/orders", "/api/prodplan/orders/{of_id}", "/api/prodplan/orders/{of_id}/phases",
                 "/api/prodplan/routes/{produto_id}", "/api/prodplan/schedule/current", "/api/prodplan/bottlenecks",
                 "/api/prodplan/risk_queue", "/api/kpis/overview", "/api/kpis/by-phase", "/api/kpis/by-product",
                 "/api/kpis/by-employee"):
        assert path in paths, path
    for path in ("/api/prodplan/orders/states", "/api/prodplan/orders/stalled"):
        assert path in paths, path
    params = {p["name"] for p in paths["/api/prodplan/orders"]["get"]["parameters"]}
    assert {"cursor", "status", "state", "product", "family", "current_phase", "q", "created_after", "finished_before",
            "as_of"} <= params
    order = schema["components"]["schemas"]["Order"]["properties"]
    assert {"state", "position", "current_phase", "status_basis"} <= set(order)
    text = str(schema["components"]["schemas"])
    assert "AT_RISK" in text and "STALLED" in text and "stalled" in text and "p75" in str(order["status"])


def test_default_as_of_is_the_last_ingestion_snapshot(factory, api_client):
    from ingestion.models import IngestionRun

    IngestionRun.objects.create(file_name="synthetic.xlsx", status="succeeded", as_of=AS_OF)
    data = api_client.get("/api/prodplan/schedule/current").json()
    assert data["as_of"].replace("Z", "+00:00") == AS_OF.isoformat()
    assert data == get(api_client, "/api/prodplan/schedule/current")
