"""Selectors of the orders domain against independent pandas / plain-Python computations over the stored rows."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from django.conf import settings

from orders import selectors
from orders.services import refresh_aggregates
from tests.orders.builders import AS_OF, build_factory

pytestmark = pytest.mark.django_db
MIN_N = settings.MIN_HISTORY_FOR_PRODUCT_PERCENTILE


def finished_lead_times(frames) -> pd.DataFrame:
    orders = frames["orders"]
    done = orders[orders["lead_time_days"].notna() & (orders["lead_time_days"] >= 0)]
    return done.merge(frames["products"].rename(columns={"id": "product_id"}), on="product_id", how="left")


def expected_thresholds(frames) -> dict:
    """product id -> (scope, p75, late) with the product → family → global fallback, computed with pandas."""
    done = finished_lead_times(frames)
    glob = done["lead_time_days"]
    out = {}
    families = dict(zip(frames["products"]["id"], frames["products"]["family"], strict=True))
    for pid in set(frames["orders"]["product_id"].dropna()) | set(families):
        own = done.loc[done["product_id"] == pid, "lead_time_days"]
        fam = done.loc[done["family"] == families.get(pid), "lead_time_days"] if pid in families else pd.Series([], dtype=float)
        series, scope = (own, "product") if len(own) >= MIN_N else ((fam, "family") if len(fam) >= MIN_N else (glob, "global"))
        out[int(pid)] = (scope, series.quantile(0.75), series.quantile(settings.ORDER_LATE_PERCENTILE),
                         series.quantile(settings.ORDER_AT_RISK_PERCENTILE))
    return out


def test_lead_time_percentiles_match_pandas(frames):
    done = finished_lead_times(frames)
    result = selectors.lead_time_percentiles()
    assert result["global"]["n"] == len(done)
    for q, key in ((0.5, "p50"), (0.75, "p75"), (0.9, "p90")):
        assert result["global"][key] == pytest.approx(done["lead_time_days"].quantile(q), rel=1e-9)
    for pid, group in done.groupby("product_id"):
        assert result["product"][int(pid)]["n"] == len(group)
        assert result["product"][int(pid)]["p90"] == pytest.approx(group["lead_time_days"].quantile(0.9), rel=1e-9)
        assert result["product"][int(pid)]["mean"] == pytest.approx(group["lead_time_days"].mean(), rel=1e-9)
    for family, group in done.dropna(subset=["family"]).groupby("family"):
        assert result["family"][family]["p50"] == pytest.approx(group["lead_time_days"].median(), rel=1e-9)
    assert 999 in result["product"]  # orphans have their own history, and no family


def test_thresholds_fall_back_to_family_then_global(frames):
    from orders.models import LeadTimeThreshold

    expected = expected_thresholds(frames)
    stored = {t.product_id: t for t in LeadTimeThreshold.objects.all()}
    assert set(stored) == set(expected)
    scopes = {pid: t.scope for pid, t in stored.items()}
    assert set(scopes.values()) >= {"product", "family"}  # 103: K2 family fallback; 104: global
    for pid, (scope, p75, late, risk) in expected.items():
        assert stored[pid].scope == scope, pid
        assert stored[pid].p75 == pytest.approx(p75, rel=1e-9)
        assert stored[pid].late_days == pytest.approx(late, rel=1e-9)
        assert stored[pid].at_risk_days == pytest.approx(risk, rel=1e-9)


def test_order_status_matches_independent_rules(frames):
    thresholds = expected_thresholds(frames)
    phases = frames["phases"]
    started = set(phases.loc[phases["started_at"].notna() & (phases["started_at"] <= AS_OF), "order_id"])
    got = dict(selectors.order_queryset(as_of=AS_OF).values_list("id", "status"))
    counts = {}
    for order in frames["orders"].itertuples():
        _, _, late, risk = thresholds[int(order.product_id)]
        age = (AS_OF - order.created_at).total_seconds() / 86400
        if pd.notna(order.finished_at) and order.finished_at <= AS_OF:
            want = "DONE"
        elif age > late:
            want = "LATE"
        elif age > risk:
            want = "AT_RISK"
        elif order.id not in started:
            want = "CREATED"
        else:
            want = "IN_PROGRESS"
        assert got[order.id] == want, order.id
        counts[want] = counts.get(want, 0) + 1
    assert {"DONE", "LATE", "IN_PROGRESS"} <= set(counts)


def test_status_as_of_in_the_past_reopens_orders(factory):
    past = AS_OF - timedelta(days=150)
    rows = list(selectors.order_queryset(as_of=past).values("id", "status", "created_at", "finished_at"))
    assert all(r["created_at"] <= past for r in rows)
    reopened = [r for r in rows if r["finished_at"] and r["finished_at"] > past]
    assert reopened and all(r["status"] != "DONE" for r in reopened)


def independent_positions(frames, t) -> dict[int, tuple[int, bool]]:
    """order id -> (phase id, in progress) at t, by the module docstring's rule, in plain Python."""
    orders = frames["orders"]
    open_ids = set(orders.loc[(orders["created_at"] <= t) & (orders["finished_at"].isna() | (orders["finished_at"] > t)), "id"])
    out = {}
    for oid, group in frames["phases"][frames["phases"]["order_id"].isin(open_ids)].groupby("order_id"):
        group = group.sort_values(["sequence", "id"])
        running = group[(group["started_at"] <= t) & (group["ended_at"].isna() | (group["ended_at"] > t))]
        if len(running):
            row = running.sort_values("started_at", ascending=False).iloc[0]
            out[oid] = (row["phase_id"], True)
            continue
        waiting = group[group["started_at"].isna() | (group["started_at"] > t)]
        if len(waiting):
            out[oid] = (waiting.iloc[0]["phase_id"], False)
    return out


def test_schedule_wip_per_phase_matches_independent_positions(frames):
    expected = independent_positions(frames, AS_OF)
    result = selectors.schedule_current(as_of=AS_OF)
    assert result["positioned_orders"] == len(expected)
    got = {p["phase"]["id"]: (p["waiting"], p["in_progress"]) for p in result["phases"]}
    want = {}
    for phase_id, running in expected.values():
        waiting, in_progress = want.get(phase_id, (0, 0))
        want[phase_id] = (waiting + (not running), in_progress + running)
    assert got == want
    for phase in result["phases"]:
        assert sum(phase["age_days"]["buckets"].values()) == phase["wip"]


def test_bottleneck_figures_match_pandas(frames):
    phases = frames["phases"].sort_values(["order_id", "sequence", "id"]).copy()
    phases["prev_end"] = phases.groupby("order_id")["ended_at"].shift()
    phases["queue_s"] = (phases["started_at"] - phases["prev_end"]).dt.total_seconds().clip(lower=0)
    result = selectors.bottlenecks(as_of=AS_OF)
    by_id = {p["phase"]["id"]: p for p in result["phases"]}
    window = phases[(phases["ended_at"] > AS_OF - timedelta(days=28)) & (phases["ended_at"] <= AS_OF)]
    positions = independent_positions(frames, AS_OF)
    for phase_id, group in phases.groupby("phase_id"):
        row = by_id.get(phase_id)
        if row is None:
            assert (window["phase_id"] == phase_id).sum() == 0
            continue
        assert row["touch_time_hours"]["value"]["p50"] == pytest.approx(group["duration_seconds"].median() / 3600, abs=1e-4)
        queue_p90 = group["queue_s"].quantile(0.9)
        if pd.isna(queue_p90):  # the first phase of every route has no previous phase
            assert row["queue_time_hours"]["value"]["p90"] is None
        else:
            assert row["queue_time_hours"]["value"]["p90"] == pytest.approx(queue_p90 / 3600, abs=1e-4)
        assert row["queue_time_hours"]["n"] == group["queue_s"].notna().sum()
        done = (window["phase_id"] == phase_id).sum()
        assert row["throughput_per_day"]["value"] == pytest.approx(done / 28, abs=1e-4)
        wip = sum(1 for pid, _ in positions.values() if pid == phase_id)
        assert row["wip"] == wip
        if done:
            assert row["expected_wait_days"]["value"] == pytest.approx(wip / (done / 28), abs=1e-3)
    assert [p["rank"] for p in result["phases"]] == list(range(1, len(result["phases"]) + 1))
    assert len(result["top_bottleneck_by_week"]) == 12


def test_kpi_overview_matches_pandas(frames):
    date_from, date_to = AS_OF.date() - timedelta(days=120), AS_OF.date()
    result = selectors.kpi_overview(date_from=date_from, date_to=date_to, as_of=AS_OF)
    start, end = result["from"], result["to"]
    orders = frames["orders"]
    fin = orders[(orders["finished_at"] >= start) & (orders["finished_at"] < end)]
    thresholds = expected_thresholds(frames)
    lead = fin["lead_time_days"]
    assert result["finished_orders"] == len(fin) > 10
    assert result["lead_time_days"]["value"]["p50"] == pytest.approx(lead.median(), abs=1e-4)
    assert result["lead_time_days"]["value"]["p90"] == pytest.approx(lead.quantile(0.9), abs=1e-4)
    assert result["lead_time_days"]["value"]["mean"] == pytest.approx(lead.mean(), abs=1e-4)
    weeks = (end - start).total_seconds() / (7 * 86400)
    assert result["throughput_per_week"]["value"] == pytest.approx(len(fin) / weeks, abs=1e-4)
    on_time = sum(1 for o in fin.itertuples() if o.lead_time_days <= thresholds[int(o.product_id)][1]) / len(fin)
    assert result["on_time_rate"]["value"] == pytest.approx(on_time, abs=1e-4)
    assert result["on_time_rate"]["basis"] == "theoretical"
    phases = frames["phases"]
    reworked = set(phases.loc[phases["is_rework"], "order_id"])
    assert result["rework_rate"]["value"] == pytest.approx(fin["id"].isin(reworked).mean(), abs=1e-4)
    open_now = orders[(orders["created_at"] <= AS_OF) & (orders["finished_at"].isna() | (orders["finished_at"] > AS_OF))]
    ages = (AS_OF - open_now["created_at"]).dt.total_seconds() / 86400
    assert result["wip"]["value"]["count"] == len(open_now)
    assert result["wip"]["value"]["age_days_p90"] == pytest.approx(ages.quantile(0.9), abs=1e-3)


def test_kpi_by_product_and_by_phase_match_pandas(frames):
    by_product = selectors.kpi_by_product(as_of=AS_OF)
    start, end = by_product["from"], by_product["to"]
    orders = frames["orders"]
    fin = orders[(orders["finished_at"] >= start) & (orders["finished_at"] < end)]
    got = {r["product"]["id"]: r for r in by_product["products"]}
    for pid, group in fin.groupby("product_id"):
        assert got[pid]["finished_orders"] == len(group)
        assert got[pid]["lead_time_days"]["value"]["p50"] == pytest.approx(group["lead_time_days"].median(), abs=1e-4)
    assert got[999]["product"]["name"] == "unknown product"
    by_phase = selectors.kpi_by_phase(as_of=AS_OF)
    phases = frames["phases"]
    ended = phases[(phases["ended_at"] >= start) & (phases["ended_at"] < end)]
    got = {r["phase"]["id"]: r for r in by_phase["phases"]}
    for phase_id, group in ended.groupby("phase_id"):
        assert got[phase_id]["executions"] == len(group)
        assert got[phase_id]["duration_hours"]["value"]["p90"] == pytest.approx(group["duration_seconds"].quantile(0.9) / 3600, abs=1e-4)
        assert got[phase_id]["rework_rate"]["value"] == pytest.approx(group["is_rework"].mean(), abs=1e-4)


def test_risk_scores_cover_open_orders_in_unit_interval(frames):
    scores = selectors.risk_scores(as_of=AS_OF)
    orders = frames["orders"]
    open_ids = set(orders.loc[orders["finished_at"].isna(), "id"])
    assert set(scores) == open_ids
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    queue = selectors.risk_queue(as_of=AS_OF, limit=1000)
    assert [r["score"] for r in queue["orders"]] == sorted(scores.values(), reverse=True)
    top = queue["orders"][0]
    weights = selectors.RISK_WEIGHTS
    assert top["score"] == pytest.approx(sum(weights[k] * top["components"][k] for k in weights), abs=1e-3)
    late = [r for r in queue["orders"] if r["components"]["age"] == 1.0]
    assert late and all(any("p90" in reason for reason in r["reasons"]) for r in late)


@pytest.mark.parametrize(
    ("executed", "expected"),
    [
        ([(1, False), (2, False), (3, False)], {"conformant": True}),
        ([(1, False), (3, False)], {"skipped": [2]}),
        ([(2, False), (1, False), (3, False)], {"out_of_order": True}),
        ([(1, False), (2, False), (2, True), (3, False)], {"rework": [2]}),
        ([(1, False), (9, False), (2, False), (3, False)], {"extra": [9]}),
    ],
)
def test_classify_route(executed, expected):
    result = selectors.classify_route([1, 2, 3], executed)
    for key, value in expected.items():
        assert result[key] == value
    assert result["conformant"] == (expected == {"conformant": True})


def test_route_conformance_counts_finished_orders(frames):
    result = selectors.route(product_id=101)
    orders = frames["orders"]
    finished = orders[(orders["product_id"] == 101) & orders["finished_at"].notna()]
    assert result["conformance"]["orders"] == len(finished)
    shares = result["conformance"]
    assert 0 < shares["followed_standard"]["value"] < 1
    assert [s["phase"]["id"] for s in result["steps"]] == [1, 2, 3, 4, 5, 6]
    phases = frames["phases"].merge(orders[["id", "product_id"]].rename(columns={"id": "order_id"}), on="order_id")
    lam = phases[(phases["product_id"] == 101) & (phases["phase_id"] == 3) & phases["duration_seconds"].notna()]
    step = result["steps"][2]
    assert step["n"] == len(lam)
    assert step["duration_hours_p50"]["value"] == pytest.approx(lam["duration_seconds"].median() / 3600, abs=1e-4)


def test_employee_gate_reports_measured_rate(frames):
    assignments, phases = frames["assignments"], frames["phases"]
    rate = assignments["order_phase_id"].isin(set(phases["id"])).mean()
    result = selectors.kpi_by_employee(include_names=False)
    assert result["status"] == "NOT_SUPPORTED_BY_DATA"
    assert result["measured"] == pytest.approx(rate, abs=1e-4)
    assert result["threshold"] == settings.EMPLOYEE_MATCH_RATE_GATE


@pytest.mark.parametrize(("match_rate", "supported"), [(0.85, False), (0.97, True)])
def test_employee_gate_flips_at_the_threshold(db, match_rate, supported):
    build_factory(match_rate=match_rate)
    from orders.models import OrderPhase, PhaseAssignment

    phase_ids = set(OrderPhase.objects.values_list("id", flat=True))
    rows = list(PhaseAssignment.objects.values("order_phase_id", "employee_id", "is_leader"))
    measured = sum(r["order_phase_id"] in phase_ids for r in rows) / len(rows)
    assert (measured >= settings.EMPLOYEE_MATCH_RATE_GATE) is supported
    result = selectors.kpi_by_employee(include_names=False)
    assert (result["status"] == "OK") is supported
    if supported:
        durations = dict(OrderPhase.objects.values_list("id", "duration_seconds"))
        for employee in result["employees"]:
            mine = [r for r in rows if r["employee_id"] == employee["employee_id"] and r["order_phase_id"] in phase_ids]
            assert employee["phases_worked"] == len(mine)
            hours = sum(durations[r["order_phase_id"]] or 0 for r in mine) / 3600
            assert employee["elapsed_hours"]["value"] == pytest.approx(hours, abs=1e-3)
            assert "name" not in employee


def test_refresh_aggregates_is_idempotent(factory):
    from orders.models import LeadTimePercentile, OrderSummary, PhaseFlowStat

    before = (list(LeadTimePercentile.objects.values("scope", "key", "n", "p90")), OrderSummary.objects.count(),
              list(PhaseFlowStat.objects.values()))
    refresh_aggregates()
    refresh_aggregates()
    after = (list(LeadTimePercentile.objects.values("scope", "key", "n", "p90")), OrderSummary.objects.count(),
             list(PhaseFlowStat.objects.values()))
    assert before == after


def test_routes_warm_caches_for_every_product_what_route_computes(factory, django_assert_num_queries):
    from django.core.cache import cache

    from orders.models import Product

    product_ids = list(Product.objects.values_list("id", flat=True))
    expected = {pid: selectors.route(product_id=pid) for pid in product_ids}
    assert any(e["conformance"]["orders"] for e in expected.values())
    cache.clear()
    assert selectors.routes_warm() == len(product_ids)
    with django_assert_num_queries(0):
        assert {pid: selectors.route(product_id=pid) for pid in product_ids} == expected
