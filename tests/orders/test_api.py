"""The PRODPLAN and KPI API: paths, pagination, filters, permissions, query counts, schema."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from tests.orders.builders import AS_OF

pytestmark = pytest.mark.django_db
AS_OF_PARAM = {"as_of": AS_OF.isoformat()}


def get(client, url, **params):
    response = client.get(url, {**AS_OF_PARAM, **params})
    assert response.status_code == 200, response.content[:500]
    return response.json()


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


def test_order_list_query_count_does_not_grow_with_page_size(factory, api_client, django_assert_max_num_queries):
    for size in (5, 100):
        with django_assert_max_num_queries(4):
            data = get(api_client, "/api/prodplan/orders", page_size=size)
        assert len(data["results"]) == min(size, factory["orders"])


def test_order_filters(factory, frames, api_client):
    orders = frames["orders"]
    orphans = walk(api_client, family="UNKNOWN", page_size=100)
    assert {r["id"] for r in orphans} == set(orders.loc[orders["product_id"] == 999, "id"])
    assert all(r["product"] == {"id": 999, "name": "unknown product", "family": "UNKNOWN", "is_known": False} for r in orphans)
    k2 = walk(api_client, family="K2", page_size=100)
    assert {r["id"] for r in k2} == set(orders.loc[orders["product_id"].isin([102, 103]), "id"])
    assert {r["id"] for r in walk(api_client, product=101, page_size=100)} == set(orders.loc[orders["product_id"] == 101, "id"])
    late = walk(api_client, status="LATE", page_size=100)
    assert late and all(r["status"] == "LATE" and r["age_days"] > r["status_basis"]["late_days"] for r in late)
    done = walk(api_client, status="DONE", page_size=100)
    assert len(done) == orders["finished_at"].notna().sum()
    assert all(r["lead_time_days"] is not None and r["age_days"] is None for r in done)
    created_after = "2025-10-01T00:00:00+00:00"
    recent = walk(api_client, created_after=created_after, page_size=100)
    assert {r["id"] for r in recent} == set(orders.loc[orders["created_at"] >= created_after, "id"])
    assert [r["id"] for r in walk(api_client, q="12")] == sorted(
        [i for i in orders["id"] if str(i).startswith("12")], reverse=True)
    phase = walk(api_client, current_phase=3, page_size=100)
    assert {r["id"] for r in phase} == set(orders.loc[orders["current_phase_id"] == 3, "id"])


def test_order_detail_and_timeline(factory, frames, api_client, django_assert_max_num_queries):
    phases = frames["phases"]
    order_id = int(phases.loc[phases["is_rework"], "order_id"].iloc[0])
    with django_assert_max_num_queries(6):
        detail = get(api_client, f"/api/prodplan/orders/{order_id}")
    mine = phases[phases["order_id"] == order_id]
    assert detail["counts"]["phases"] == len(mine)
    assert detail["counts"]["reworks"] == int(mine["is_rework"].sum())
    with django_assert_max_num_queries(5):
        timeline = get(api_client, f"/api/prodplan/orders/{order_id}/phases")
    assert [p["id"] for p in timeline["phases"]] == list(mine.sort_values(["sequence", "id"])["id"])
    team = frames["assignments"].groupby("order_phase_id").size()
    for p in timeline["phases"]:
        assert p["team_size"] == (int(team[p["id"]]) if p["id"] in team.index else None)
    assert api_client.get("/api/prodplan/orders/987654321").status_code == 404


def test_timeline_reports_missing_and_extra_steps(factory, frames, api_client):
    from orders.models import RouteStep

    orders, phases = frames["orders"], frames["phases"]
    routes = {}
    for step in RouteStep.objects.values("product_id", "phase_id"):
        routes.setdefault(step["product_id"], set()).add(step["phase_id"])
    checked = 0
    for order in orders[orders["product_id"] != 999].itertuples():
        observed = set(phases.loc[phases["order_id"] == order.id, "phase_id"])
        standard = routes[order.product_id]
        if observed != standard:
            data = get(api_client, f"/api/prodplan/orders/{order.id}/phases")["route_comparison"]
            assert {s["phase_id"] for s in data["missing_steps"]} == standard - observed
            assert {s["phase_id"] for s in data["extra_steps"]} == observed - standard
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize(
    ("url", "max_queries"),
    [
        ("/api/prodplan/routes/101", 6),
        ("/api/prodplan/schedule/current", 5),
        ("/api/prodplan/bottlenecks", 8),
        ("/api/prodplan/risk_queue", 12),
        ("/api/kpis/overview", 5),
        ("/api/kpis/by-phase", 5),
        ("/api/kpis/by-product", 5),
        ("/api/kpis/by-employee", 4),
    ],
)
def test_analytic_endpoints_answer_with_bounded_queries(factory, api_client, django_assert_max_num_queries, url, max_queries):
    with django_assert_max_num_queries(max_queries):
        data = get(api_client, url)
    assert data
    with django_assert_max_num_queries(2):  # second call: the versioned cache answers
        assert get(api_client, url) == data


def test_figures_carry_basis_and_coverage(factory, api_client):
    overview = get(api_client, "/api/kpis/overview")
    for key in ("lead_time_days", "throughput_per_week", "wip", "on_time_rate", "rework_rate"):
        assert overview[key]["basis"] in {"observed", "theoretical", "imputed"}
        assert "coverage" in overview[key]
    for phase in get(api_client, "/api/prodplan/bottlenecks")["phases"]:
        assert phase["expected_wait_days"]["basis"] == "theoretical"
        assert phase["queue_time_hours"]["basis"] == "observed"


def test_kpi_date_range_validation(factory, api_client):
    assert api_client.get("/api/kpis/overview", {"date_from": "2025-12-01", "date_to": "2025-11-01"}).status_code == 400
    narrow = get(api_client, "/api/kpis/overview", date_from="2025-12-01", date_to="2025-12-15")
    wide = get(api_client, "/api/kpis/overview", date_from="2025-03-01", date_to="2025-12-15")
    assert narrow["finished_orders"] < wide["finished_orders"]


def test_by_employee_names_need_the_permission(db, api_client):
    from tests.orders.builders import build_factory

    build_factory(match_rate=1.0)
    anonymous = get(api_client, "/api/kpis/by-employee")
    assert anonymous["status"] == "OK"
    assert all("name" not in e for e in anonymous["employees"])
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
    params = {p["name"] for p in paths["/api/prodplan/orders"]["get"]["parameters"]}
    assert {"cursor", "status", "product", "family", "current_phase", "q", "created_after", "finished_before", "as_of"} <= params
    order = schema["components"]["schemas"]["Order"]["properties"]
    assert "AT_RISK" in str(schema["components"]["schemas"]) and "p75" in str(order["status"])


def test_default_as_of_is_the_last_ingestion_snapshot(factory, api_client):
    from ingestion.models import IngestionRun

    IngestionRun.objects.create(file_name="synthetic.xlsx", status="succeeded", as_of=AS_OF)
    data = api_client.get("/api/prodplan/schedule/current").json()
    assert data["as_of"].replace("Z", "+00:00") == AS_OF.isoformat()
    assert data == get(api_client, "/api/prodplan/schedule/current")
