"""What-if API: validation, stored idempotent runs, results, the runs list, async runs, backtest next to runs."""

from __future__ import annotations

import pytest

from prodplan.cache import bump_data_version
from tests.whatif.factory import AS_OF, build
from whatif.models import WhatIfRun
from whatif.services import whatif_backtest_run

pytestmark = pytest.mark.django_db
URL = "/api/whatif/simulate"


def scenario(**extra):
    return {"as_of": AS_OF.isoformat(), "horizon_days": 14, "seed": 3, **extra}


def test_simulate_needs_an_api_key(api_client):
    assert api_client.post(URL, scenario(), format="json").status_code in (401, 403)


@pytest.mark.parametrize("body, field, text", [
    ({"capacity_overrides": [{"phase_id": 77, "servers": 2}]}, "capacity_overrides[0].phase_id", "77"),
    ({"coef_overrides": [{"phase_id": 1, "product_id": 4242, "multiplier": 1.2}]}, "coef_overrides[0].product_id", "4242"),
    ({"coef_overrides": [{"phase_id": 88, "multiplier": 1.2}]}, "coef_overrides[0].phase_id", "88"),
])
def test_unknown_phase_or_product_is_a_400_naming_it(keyed_client, body, field, text):
    build()
    r = keyed_client.post(URL, scenario(**body), format="json")
    assert r.status_code == 400
    assert text in str(r.json()[field])
    assert WhatIfRun.objects.count() == 0


@pytest.mark.parametrize("override", [{"phase_id": 2, "servers": -1}, {"phase_id": 2, "servers": 0},
                                      {"phase_id": 2, "multiplier": -0.5}])
def test_negative_capacity_is_a_400(keyed_client, override):
    build()
    r = keyed_client.post(URL, scenario(capacity_overrides=[override]), format="json")
    assert r.status_code == 400
    assert "capacity" in str(r.json()).lower()


def test_bad_priority_rule_is_a_400(keyed_client):
    r = keyed_client.post(URL, scenario(priority_rule="RANDOM"), format="json")
    assert r.status_code == 400 and "priority_rule" in r.json()


def test_simulate_stores_the_run_and_returns_the_same_run_for_the_same_scenario(keyed_client):
    build()
    body = scenario(priority_rule="SPT", capacity_overrides=[{"phase_id": 2, "servers": 3}],
                    coef_overrides=[{"phase_id": 3, "family": "K1", "multiplier": 1.2}])
    first = keyed_client.post(URL, body, format="json")
    assert first.status_code == 201, first.content
    run = first.json()
    assert run["status"] == "succeeded"
    out = run["outputs"]
    assert out["basis"] == "theoretical"
    assert out["baseline"]["orders_in"] == {"wip": 4, "arrivals": out["baseline"]["orders_in"]["arrivals"]}
    assert out["scenario"]["servers"]["2"] == 3
    assert out["model"]["capacity"]["2"]["servers"] >= 1
    assert set(run["timings"]) == {"gather_ms", "simulate_ms", "total_ms"}
    assert run["inputs"]["capacity_overrides"] == [{"phase_id": 2, "servers": 3}]
    # same scenario, keys in another order, same data: the stored run, not a recomputation
    again = keyed_client.post(URL, {**dict(reversed(list(body.items())))}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == run["id"] and again.json()["finished_at"] == run["finished_at"]
    assert WhatIfRun.objects.count() == 1
    # new data version: a new run
    bump_data_version()
    from django.core.cache import cache

    cache.clear()
    third = keyed_client.post(URL, body, format="json")
    assert third.status_code == 201 and third.json()["id"] != run["id"]


def test_deterministic_outputs_across_data_versions(keyed_client):
    build()
    a = keyed_client.post(URL, scenario(), format="json").json()
    bump_data_version()
    from django.core.cache import cache

    cache.clear()
    b = keyed_client.post(URL, scenario(), format="json").json()
    assert a["id"] != b["id"]
    assert a["outputs"]["baseline"] == b["outputs"]["baseline"]
    assert a["outputs"]["scenario"] == b["outputs"]["scenario"]


def test_risk_first_states_its_basis(keyed_client):
    build()
    out = keyed_client.post(URL, scenario(priority_rule="RISK_FIRST"), format="json").json()["outputs"]
    assert out["model"]["risk_basis"] in ("orders.selectors.risk_scores", "order_age_fallback")
    if out["model"]["risk_basis"] == "order_age_fallback":
        assert any("age" in n for n in out["notes"])


def test_async_run_is_accepted_then_executed(keyed_client, django_capture_on_commit_callbacks):
    build()
    with django_capture_on_commit_callbacks(execute=True):
        r = keyed_client.post(URL, scenario(run_async=True), format="json")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    got = keyed_client.get(f"/api/whatif/result/{r.json()['id']}")
    assert got.status_code == 200 and got.json()["status"] == "succeeded"
    assert got.json()["outputs"]["baseline"]["orders_in"]["wip"] == 4


def test_async_run_with_the_broker_down_fails_with_the_reason_and_a_retry_recomputes(
        keyed_client, django_capture_on_commit_callbacks, broker_down):
    from prodplan.task_queue import QueueUnavailable

    build()
    # The test's transaction defers the queueing to its commit; in autocommit it happens inside the request,
    # whose answer is then the API's 503 for QueueUnavailable (asserted in the ingestion API tests).
    with pytest.raises(QueueUnavailable) as raised, django_capture_on_commit_callbacks(execute=True):
        keyed_client.post(URL, scenario(run_async=True), format="json")
    run = WhatIfRun.objects.get()
    assert raised.value.run_id == run.pk
    assert run.status == "failed" and run.error.startswith("task queue unavailable")
    again = keyed_client.post(URL, scenario(), format="json")  # same scenario, synchronous: computed, not reused
    assert again.status_code == 201 and again.json()["status"] == "succeeded" and again.json()["id"] == run.pk


def test_result_shows_the_latest_backtest(keyed_client, api_client):
    build()
    run_id = keyed_client.post(URL, scenario(), format="json").json()["id"]
    assert api_client.get(f"/api/whatif/result/{run_id}").json()["backtest"] is None
    bt = whatif_backtest_run(start=AS_OF, weeks=1, replications=2)
    body = api_client.get(f"/api/whatif/result/{run_id}").json()
    assert body["backtest"]["id"] == bt.pk and body["backtest"]["actual_weekly"] == bt.actual_weekly
    assert api_client.get("/api/whatif/result/999999").status_code == 404


def test_runs_list_newest_first_with_cursor(keyed_client, api_client, pinned_queries):
    build()
    ids = [keyed_client.post(URL, scenario(seed=s), format="json").json()["id"] for s in range(5)]
    # the shared client carries the API key: 2 queries authenticate it, 1 reads the page
    with pinned_queries("whatif.test_api.test_runs_list_newest_first_with_cursor"):
        page = api_client.get("/api/whatif/runs?page_size=2").json()
    assert [r["id"] for r in page["results"]] == ids[::-1][:2]
    assert "outputs" not in page["results"][0]
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = api_client.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert seen == ids[::-1]



def test_simulate_on_the_generated_demo_data(ingested, keyed_client):
    """The WIP the run simulates is the set of orders open at the data's as-of, counted independently."""
    from datetime import timedelta

    from django.db.models import Q

    from orders.models import ManufacturingOrder

    as_of = ingested["as_of"]
    r = keyed_client.post(URL, {"horizon_days": 56, "seed": 1, "priority_rule": "SPT"}, format="json")
    assert r.status_code == 201, r.content
    run = r.json()
    assert run["inputs"]["as_of"] == as_of.isoformat()
    open_then = ManufacturingOrder.objects.filter(Q(finished_at__isnull=True) | Q(finished_at__gt=as_of),
                                                  created_at__lte=as_of).count()
    out = run["outputs"]
    assert out["baseline"]["orders_in"]["wip"] == open_then == out["model"]["wip_orders"]
    recent = ManufacturingOrder.objects.filter(created_at__gt=as_of - timedelta(weeks=8), created_at__lte=as_of).count()
    assert out["model"]["arrival_rate_per_week"] == round(recent / 8, 3)
    assert sum(out["model"]["route_basis"].values()) == open_then
    assert len(out["baseline"]["throughput_per_week"]) == 8
    assert out["bottleneck"]["baseline"]["phase_id"] is None or out["bottleneck"]["baseline"]["name"]


def test_a_pending_run_no_worker_picked_up_is_run_again_on_re_post(keyed_client, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from whatif.services import PENDING_RUN_PICKUP_SECONDS

    build()
    with django_capture_on_commit_callbacks(execute=False):  # queued, but the task is lost (a Redis restart)
        first = keyed_client.post(URL, scenario(run_async=True), format="json").json()
    assert first["status"] == "pending"
    fresh = keyed_client.post(URL, scenario(run_async=True), format="json").json()
    assert fresh["id"] == first["id"] and fresh["status"] == "pending"  # inside the window: the same queued run
    WhatIfRun.objects.filter(pk=first["id"]).update(
        created_at=timezone.now() - timedelta(seconds=PENDING_RUN_PICKUP_SECONDS + 1))
    with django_capture_on_commit_callbacks(execute=True):
        again = keyed_client.post(URL, scenario(run_async=True), format="json")
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    assert keyed_client.get(f"/api/whatif/result/{first['id']}").json()["status"] == "succeeded"
