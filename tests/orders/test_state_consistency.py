"""Every endpoint and page that shows order states agrees with the one order-state model, at several as-of dates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from tests.conftest import clear_caches

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


RICH_SCALE = 0.03  # ~18 open orders at the snapshot: every state occurs (the session's 0.005 workbook has one)


@pytest.fixture(scope="module")
def rich_workbooks(tmp_path_factory) -> dict[str, str]:
    """The demo workbook at RICH_SCALE in both export shapes: with not-yet-started phase rows, and without."""
    from django.core.management import call_command

    folder = tmp_path_factory.mktemp("rich")
    paths = {"full_rows": folder / "full.xlsx", "started_rows_only": folder / "started.xlsx"}
    call_command("make_demo_workbook", str(paths["full_rows"]), scale=RICH_SCALE, seed=42, as_of="2025-12-15")
    call_command("make_demo_workbook", str(paths["started_rows_only"]), scale=RICH_SCALE, seed=42, as_of="2025-12-15",
                 started_phase_rows_only=True)
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(params=["full_rows", "started_rows_only"])
def loaded(request, rich_workbooks, db) -> dict:
    """One shape ingested inside the test's transaction (the domain tables start empty: tests/conftest.py)."""
    from ingestion.services import ingest_workbook

    run = ingest_workbook(path=rich_workbooks[request.param])
    assert run.status == "succeeded", run.error
    clear_caches()
    return {"as_of": run.as_of, "shape": request.param}


@pytest.fixture
def page_client(supervisor_client):
    return supervisor_client


def _dates(loaded) -> list[str]:
    """The data's as-of, and two past Mondays in working hours (at night and at weekends nobody is at a phase)."""
    as_of = loaded["as_of"]
    past = [(as_of - timedelta(days=days)).replace(hour=hour, minute=30, second=0) for days, hour in ((35, 10), (119, 15))]
    return [t.strftime("%Y-%m-%dT%H:%M:%S%z") for t in (as_of, *past)]


def _walk(client, path: str, **params) -> list[dict]:
    rows, url, query = [], path, {**params, "page_size": 500}
    while url:
        body = client.get(url, query).json()
        rows.extend(body["results"])
        url, query = body["next"], None
    return rows


def _counts_from_every_surface(api, pages, as_of: str) -> dict[str, dict]:
    """The state counts as each endpoint and page reports them."""
    seen: dict[str, dict] = {}
    states = api.get("/api/prodplan/orders/states", {"as_of": as_of}).json()["states"]
    seen["orders/states"] = {k: states[k] for k in ("not_started", "waiting", "in_progress", "stalled", "finished")}

    schedule = api.get("/api/prodplan/schedule/current", {"as_of": as_of}).json()
    seen["schedule/current phases"] = {
        "not_started": sum(p["not_started"] for p in schedule["phases"]),
        "waiting": sum(p["waiting"] for p in schedule["phases"]),
        "in_progress": sum(p["in_progress"] for p in schedule["phases"]),
        "stalled": schedule["stalled"]["count"],
    }
    seen["schedule/current active"] = {"active": schedule["active_orders"]}

    bottlenecks = api.get("/api/prodplan/bottlenecks", {"as_of": as_of}).json()
    seen["bottlenecks"] = {"active": bottlenecks["active_orders"], "stalled": bottlenecks["stalled_orders"]}

    risk = api.get("/api/prodplan/risk_queue", {"as_of": as_of, "limit": 1000}).json()
    seen["risk_queue"] = {"active": len(risk["orders"]), "stalled": risk["stalled"]["count"]}
    seen["risk_queue states"] = {state: sum(1 for o in risk["orders"] if o["state"] == state)
                                 for state in ("not_started", "waiting", "in_progress")}

    stalled = api.get("/api/prodplan/orders/stalled", {"as_of": as_of}).json()
    seen["orders/stalled"] = {"stalled": stalled["count"]}
    assert len(stalled["orders"]) == stalled["count"]

    listed = {state: len(_walk(api, "/api/prodplan/orders", as_of=as_of, state=state))
              for state in ("not_started", "waiting", "in_progress", "stalled", "finished")}
    seen["orders?state="] = listed

    day = as_of[:10]
    kpis = api.get("/api/kpis/overview", {"as_of": as_of, "date_to": day}).json()
    seen["kpis/overview"] = {"active": kpis["wip"]["value"]["count"], "stalled": kpis["wip"]["stalled_orders_excluded"]}

    wip = api.get("/api/smartinventory/wip", {"as_of": as_of}).json()
    seen["smartinventory/wip"] = {"active": wip["total_orders"]["value"]}

    html = pages.get("/", {"widget": "wip", "as_of": as_of}, **HX).content.decode()
    match = re.search(r'id="wip-counts" data-not-started="(\d+)" data-waiting="(\d+)" data-in-progress="(\d+)" '
                      r'data-stalled="(\d+)"', html)
    assert match, html
    seen["overview page"] = dict(zip(("not_started", "waiting", "in_progress", "stalled"), map(int, match.groups()),
                                     strict=True))
    for state in ("stalled", "in_progress"):
        page = pages.get("/orders/", {"state": state, "as_of": as_of}, **HX).content.decode()
        seen.setdefault("orders page", {})[state] = page.count('class="order-row"')
    return seen


def test_every_surface_reports_the_same_state_counts_at_three_dates(loaded, keyed_client, page_client):
    from orders import selectors

    for as_of in _dates(loaded):
        clear_caches()
        seen = _counts_from_every_surface(keyed_client, page_client, as_of)
        truth = seen["orders/states"]
        truth = {**truth, "active": truth["not_started"] + truth["waiting"] + truth["in_progress"]}
        for surface, counts in seen.items():
            for key, value in counts.items():
                assert value == truth[key], f"{surface} says {key}={value} at {as_of}; the order state says {truth[key]}"
        # Both export shapes: every open order is placed.
        summary = selectors.state_summary(as_of=datetime.fromisoformat(as_of))
        assert summary["placement"]["coverage"] == 1.0, summary["placement"]


def test_the_dates_hold_orders_in_several_states(loaded):
    """The comparison above is not vacuous: across its dates, orders wait, work and stall, in both shapes."""
    from orders import selectors

    totals = {"waiting": 0, "in_progress": 0, "stalled": 0}
    for as_of in _dates(loaded):
        states = selectors.state_summary(as_of=datetime.fromisoformat(as_of))["states"]
        for key in totals:
            totals[key] += states[key]
    assert all(totals.values()), totals
