"""Selectors of the orders domain against independent pandas / plain-Python computations over the stored rows.

The independent side (tests/orders/independent.py) restates each documented rule with only what was known at
the as-of time; every comparison is made at the snapshot and at past as-of times, where later finishes, starts
and ends must not count."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pandas as pd
import pytest
from django.conf import settings

from orders import selectors
from orders.services import refresh_aggregates
from tests.orders import independent as ind
from tests.orders.builders import (
    AS_OF,
    CREATED_AFTER_AS_OF,
    STATE_EXAMPLES,
    add_state_examples,
    build_factory,
)
from tests.orders.conftest import read_frames

pytestmark = pytest.mark.django_db
MIN_N = settings.MIN_HISTORY_FOR_PRODUCT_PERCENTILE
PAST = AS_OF - timedelta(days=60)
FAR_PAST = AS_OF - timedelta(days=150)
STAT_KEYS = ("n", "p50", "p75", "p90", "mean", "at_risk_days", "late_days")


@pytest.fixture
def states_world(factory) -> dict:
    """The factory plus STATE_EXAMPLES (an abandoned order, the ERP snapshot at AS_OF), read back as frames."""
    marks = add_state_examples()
    return {**read_frames(), **marks}


def expected_states(world: dict, t) -> dict[int, dict]:
    return ind.order_states(world, t, snapshot_at=world["snapshot_at"], abandoned=world["abandoned"])


def approx(value, digits: int = 3):
    return None if value is None else pytest.approx(value, abs=10 ** -digits)


# --- lead-time thresholds at as_of -------------------------------------------------------------------------


@pytest.mark.parametrize("t", [AS_OF, FAR_PAST], ids=["snapshot", "past"])
def test_lead_time_thresholds_match_pandas_at_as_of(frames, t):
    expected = ind.lead_thresholds(frames, t)
    got = selectors.lead_time_thresholds(as_of=t)
    assert got["global"]["n"] > 10
    for key in STAT_KEYS:
        assert got["global"][key] == pytest.approx(expected["global"][key], rel=1e-9), key
    assert set(got["family"]) == set(expected["family"]) == {"K1", "K2", "C1"}
    for family, want in expected["family"].items():
        for key in STAT_KEYS:
            assert got["family"][family][key] == pytest.approx(want[key], rel=1e-9), (family, key)
    for pid, want in expected["product"].items():
        have = got["product"].get(pid, got["global"])  # absent: the global thresholds apply
        assert have["scope"] == want["scope"], pid
        for key in STAT_KEYS:
            assert have[key] == pytest.approx(want[key], rel=1e-9), (pid, key)


def test_thresholds_know_only_the_orders_finished_by_as_of(frames):
    orders = frames["orders"]
    now, past = selectors.lead_time_thresholds(as_of=AS_OF), selectors.lead_time_thresholds(as_of=FAR_PAST)
    assert now["global"]["n"] == orders["finished_at"].notna().sum()
    assert past["global"]["n"] == (orders["finished_at"] <= FAR_PAST).sum() < now["global"]["n"]


def test_thresholds_fall_back_to_family_then_global(frames):
    expected = ind.lead_thresholds(frames, AS_OF)
    got = selectors.lead_time_thresholds(as_of=AS_OF)
    scopes = {pid: got["product"].get(pid, got["global"])["scope"] for pid in expected["product"]}
    assert scopes == {pid: want["scope"] for pid, want in expected["product"].items()}
    # 101, 102: their own history; 103 (few orders): the K2 family's; 104 (C1, few): global; 999 has no family
    assert expected["own"][103]["n"] < MIN_N <= expected["family"]["K2"]["n"]
    assert scopes[101] == scopes[102] == "product" and scopes[103] == "family" and scopes[104] == "global"
    assert got["product"][103]["late_days"] == pytest.approx(expected["family"]["K2"]["late_days"], rel=1e-9)
    assert scopes[999] == ("product" if expected["own"][999]["n"] >= MIN_N else "global")


def test_thresholds_are_computed_once_per_as_of(factory, django_assert_num_queries):
    first = selectors.lead_time_thresholds(as_of=AS_OF)
    with django_assert_num_queries(0):
        assert selectors.lead_time_thresholds(as_of=AS_OF) == first
    with django_assert_num_queries(2):  # another as-of: its own percentiles (and the catalogue's families)
        assert selectors.lead_time_thresholds(as_of=PAST) != first


# --- stall thresholds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("floor_days", [7.0, 0.25])
@pytest.mark.parametrize("t", [AS_OF, FAR_PAST], ids=["snapshot", "past"])
def test_stall_thresholds_match_pandas(frames, settings, t, floor_days):
    settings.ORDER_STALLED_FLOOR_DAYS = floor_days
    expected = ind.stall_thresholds(frames, t)
    got = selectors.stall_thresholds(as_of=t)
    assert got["gaps_measured"] == expected["gaps_measured"] > ind.STALL_MIN_GAPS
    assert got["next_phase"] == expected["next_phase"] and "start" in got["next_phase"]
    assert got["default_seconds"] == pytest.approx(expected["default_seconds"], rel=1e-9)
    assert set(got["phase_seconds"]) == set(expected["phase_seconds"])
    for pid, seconds in expected["phase_seconds"].items():
        assert got["phase_seconds"][pid] == pytest.approx(seconds, rel=1e-9), pid
    assert all(s >= floor_days * ind.DAY for s in got["phase_seconds"].values())
    if floor_days < 1:  # under a low floor the measured percentiles decide
        assert any(s > floor_days * ind.DAY for s in got["phase_seconds"].values())


# --- the order state ---------------------------------------------------------------------------------------

STATE_TIMES = [AS_OF, AS_OF - timedelta(hours=1), PAST, FAR_PAST]
STATE_IDS = ["snapshot", "before-snapshot", "past", "far-past"]


@pytest.mark.parametrize("t", STATE_TIMES, ids=STATE_IDS)
def test_order_states_match_the_independent_rule(states_world, t):
    expected = expected_states(states_world, t)
    ids = [int(i) for i in states_world["orders"]["id"]]
    got = selectors.order_states(as_of=t, order_ids=ids)
    assert set(got) == set(expected)  # created by t
    for oid, want in expected.items():
        have = got[oid]
        for key in ("state", "flow_state", "phase_id", "placement_basis", "since", "status", "threshold_scope"):
            assert have[key] == want[key], (oid, key)
        assert have["age_days"] == approx(want["age_days"], 6), oid
        assert have["late_days"] == approx(want["late_days"], 9), oid
        assert have["p75_days"] == approx(want["p75_days"], 9), oid
        if want["state"] != "finished":
            assert have["last_event_at"] == want["last_event_at"], oid
            assert have["reworks"] == want["reworks"], oid
            assert have["stall_threshold_seconds"] == pytest.approx(want["stall_threshold_seconds"], rel=1e-9), oid
    states = Counter(s["state"] for s in expected.values())
    assert states["finished"] and states["stalled"]
    if t == AS_OF:  # the hand-made orders, as the rule reads for each
        assert CREATED_AFTER_AS_OF not in got
        for oid, want in STATE_EXAMPLES.items():
            assert {k: got[oid][k] for k in want} == want, oid
        assert got[9005]["status"] == "ABANDONED" and got[9005]["since"] == got[9005]["last_event_at"]
        assert set(states) == {"finished", "stalled", "abandoned", "not_started", "waiting", "in_progress"}
        assert {s["placement_basis"] for s in expected.values()} >= {
            "none", "phase_in_progress", "next_phase_row", "route_next_step", "observed_next_phase", "erp_current_phase"}
    if t == AS_OF - timedelta(hours=1):  # before the ERP snapshot its current phase is not known
        assert got[9004]["placement_basis"] == "unknown" and got[9004]["phase_id"] is None


def test_a_past_as_of_reopens_orders_finished_later(factory):
    rows = list(selectors.order_queryset(as_of=FAR_PAST).values(*selectors.ORDER_FIELDS))
    assert rows and all(r["created_at"] <= FAR_PAST for r in rows)
    payloads = {p["id"]: p for p in selectors.order_rows(as_of=FAR_PAST, rows=rows)}
    reopened = [r["id"] for r in rows if r["finished_at"] and r["finished_at"] > FAR_PAST]
    assert reopened
    for oid in reopened:
        p = payloads[oid]
        assert p["state"] != "finished" and p["status"] != "DONE"
        assert p["finished"] is None and p["lead_time_days"] is None and p["age_days"] > 0
        assert p["position"]["state"] == p["state"]


def test_state_summary_counts_every_state(states_world):
    expected = expected_states(states_world, AS_OF)
    summary = selectors.state_summary(as_of=AS_OF)
    counts = Counter(s["state"] for s in expected.values())
    assert summary["states"] == {state: counts.get(state, 0) for state in summary["states"]}
    open_states = [s for s in expected.values() if s["state"] != "finished"]
    assert summary["open_orders"] == len(open_states)
    bases = Counter(s["placement_basis"] for s in open_states)
    assert {k: v for k, v in summary["placement"]["value"].items() if v} == dict(bases)
    assert summary["placement"]["placed"] == len(open_states) - bases.get("unknown", 0)


@pytest.mark.parametrize("t", [AS_OF, PAST], ids=["snapshot", "past"])
def test_state_filters_select_the_state_at_as_of(states_world, t):
    from orders.models import ManufacturingOrder

    expected = expected_states(states_world, t)

    def where(column, values):
        subquery = selectors.order_ids_where(as_of=t, column=column, values=values)
        return set(ManufacturingOrder.objects.filter(id__in=subquery).values_list("id", flat=True))

    for key, column in (("state", "state"), ("status", "status"), ("phase_id", "phase_id")):
        for wanted in {s[key] for s in expected.values() if s[key] is not None}:
            assert where(column, [wanted]) == {oid for oid, s in expected.items() if s[key] == wanted}, (key, wanted)


def test_order_timeline_and_detail_are_cut_at_as_of(frames):
    phases, orders = frames["phases"], frames["orders"]
    # an order halfway through a phase at t: that phase's end, the later phases and the finish are not known at t
    ended = phases[phases["started_at"].notna() & phases["ended_at"].notna() & (phases["ended_at"] > phases["started_at"])]
    candidates = ended.merge(orders[["id", "finished_at"]].rename(columns={"id": "order_id"}), on="order_id")
    row = candidates[candidates["finished_at"].notna() & (candidates["sequence"] >= 2)].sort_values("id").iloc[0]
    oid, t = int(row["order_id"]), row["started_at"] + (row["ended_at"] - row["started_at"]) / 2
    t = t.to_pydatetime()
    mine = phases[phases["order_id"] == oid].sort_values(["sequence", "id"])
    timeline = selectors.order_phases(order_id=oid, as_of=t)
    assert [p["id"] for p in timeline["phases"]] == list(mine["id"])
    for p, r in zip(timeline["phases"], mine.itertuples(), strict=True):
        start = r.started_at if pd.notna(r.started_at) and r.started_at <= t else None
        end = r.ended_at if pd.notna(r.ended_at) and r.ended_at <= t else None
        assert (p["start"], p["end"]) == (start, end), r.id
        assert p["state"] == ("done" if end else "in_progress" if start else "not_started")
        assert (p["duration_hours"] is None) == (end is None)
    assert sum(p["state"] == "in_progress" for p in timeline["phases"]) == 1
    observed = {int(r.phase_id) for r in mine.itertuples() if pd.notna(r.started_at) and r.started_at <= t}
    standard = {int(s) for s in frames["routes"].loc[frames["routes"]["product_id"] == row_product(frames, oid), "phase_id"]}
    comparison = timeline["route_comparison"]
    # the order is open at t: a standard step not executed is missing only when the order went past it
    steps = frames["routes"].loc[frames["routes"]["product_id"] == row_product(frames, oid)]
    reached = max((int(r.sequence) for r in steps.itertuples() if int(r.phase_id) in observed), default=None)
    missing = {int(r.phase_id) for r in steps.itertuples()
               if int(r.phase_id) not in observed and reached is not None and int(r.sequence) < reached}
    assert {s["phase_id"] for s in comparison["missing_steps"]} == missing
    assert {s["phase_id"] for s in comparison["extra_steps"]} == observed - standard

    detail = selectors.order_detail(order_id=oid, as_of=t)
    started, done = mine["started_at"] <= t, mine["ended_at"] <= t
    assert detail["counts"]["phases"] == len(mine)
    assert detail["counts"]["phases_started"] == started.sum() and detail["counts"]["phases_done"] == done.sum()
    assert detail["counts"]["reworks"] == (mine["is_rework"] & started).sum()
    assert detail["first_phase_started"] == mine.loc[started, "started_at"].min()
    assert detail["last_phase_ended"] == (mine.loc[done, "ended_at"].max() if done.any() else None)
    assert detail["state"] == "in_progress" and detail["finished"] is None and detail["lead_time_days"] is None
    assert detail["current_phase"]["id"] == int(row["phase_id"])
    created = orders.loc[orders["id"] == oid, "created_at"].iloc[0]
    before = created - timedelta(seconds=1)  # not created yet: unknown to both
    assert selectors.order_detail(order_id=oid, as_of=before) is None
    assert selectors.order_phases(order_id=oid, as_of=before) is None


def row_product(frames, oid: int) -> int:
    return int(frames["orders"].loc[frames["orders"]["id"] == oid, "product_id"].iloc[0])


# --- WIP and the schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [AS_OF, PAST], ids=["snapshot", "past"])
def test_schedule_current_counts_the_independent_states_per_phase(states_world, t):
    expected = expected_states(states_world, t)
    active = ind.active(expected)
    stalled = [s for s in expected.values() if s["state"] == "stalled"]
    result = selectors.schedule_current(as_of=t)
    want = {}
    for s in active:
        counts = want.setdefault(s["phase_id"], Counter())
        counts[s["state"]] += 1
    stalled_at = Counter(s["phase_id"] for s in stalled)
    got = {(p["phase"] or {}).get("id"): p for p in result["phases"]}
    assert set(got) == set(want)
    for pid, counts in want.items():
        p = got[pid]
        assert (p["not_started"], p["waiting"], p["in_progress"]) == (
            counts["not_started"], counts["waiting"], counts["in_progress"]), pid
        assert p["wip"] == sum(counts.values()) and p["stalled"] == stalled_at.get(pid, 0)
        assert sum(p["age_days"]["buckets"].values()) == p["wip"]
        ages = pd.Series([s["age_days"] for s in active if s["phase_id"] == pid])
        assert p["age_days"]["p50"] == approx(ages.median()) and p["age_days"]["max"] == approx(ages.max())
    assert result["active_orders"] == len(active) == sum(p["wip"] for p in result["phases"])
    assert result["open_orders"] == sum(1 for s in expected.values() if s["state"] != "finished")
    assert result["positioned_orders"] == sum(1 for s in active if s["placement_basis"] != "unknown")
    assert result["stalled"]["count"] == len(stalled) > 0
    assert [s["order_id"] for s in result["stalled"]["orders"]] == [
        s["order_id"] for s in sorted(stalled, key=lambda s: (s["last_event_at"], s["order_id"]))][:20]
    for s in result["stalled"]["orders"]:
        assert s["idle_days"] == approx((t - expected[s["order_id"]]["last_event_at"]).total_seconds() / ind.DAY)
        assert s["idle_days"] > s["threshold_days"]
    assert result["abandoned"] == sum(1 for s in expected.values() if s["state"] == "abandoned")


# --- bottlenecks from measured flow ------------------------------------------------------------------------


@pytest.mark.parametrize("t", [AS_OF, PAST], ids=["snapshot", "past"])
def test_bottlenecks_rank_the_queue_measured_with_pandas(states_world, t):
    expected_state = expected_states(states_world, t)
    routes = ind.standard_routes(states_world)

    def ranked_at(when, peaks=None):
        return ind.rank(ind.measured_flow(states_world, when), expected_states(states_world, when), when, peaks,
                        routes=routes, successors=ind.stall_thresholds(states_world, when)["next_phase"])

    expected = ranked_at(t, ind.peak_concurrency(states_world, t))
    result = selectors.bottlenecks(as_of=t)
    assert [p["phase"]["id"] for p in result["phases"]] == [r["phase_id"] for r in expected]
    assert [p["rank"] for p in result["phases"]] == list(range(1, len(expected) + 1))
    for p, want in zip(result["phases"], expected, strict=True):
        queue = p["queue_time_hours"]
        assert queue["value"]["total"] == approx(want["score_hours"]), want
        assert queue["value"]["measured_in_window"] == approx(want["measured_hours"])
        assert queue["value"]["waiting_now"] == approx(want["waiting_hours"])
        assert queue["value"]["mean_wait"] == approx(want["mean_wait_hours"])
        assert queue["n"] == want["queue_n"] and p["enough_volume"] == want["enough"]
        assert p["queue_size"] == want["waiting_orders"] and p["in_progress"] == want["in_progress"]
        assert p["throughput_per_day"]["value"] == approx(want["throughput_per_day"], 4)
        assert p["utilisation"]["value"] == approx(want["utilisation"], 4)
        forecast = p["forecast_queue_hours"]
        assert forecast["value"]["total"] == approx(want["forecast_hours"]), want
        assert forecast["value"]["mean_wait"] == approx(want["forecast_mean_wait_hours"])
        visits = forecast["value"]["expected_visits"]
        assert visits["waiting_now"] + visits["on_route_next_steps"] == want["visits"]
        assert visits["waiting_now"] == want["waiting_orders"]
        assert forecast["value"]["from_expected_visits"] + forecast["value"]["from_recent_queue"] == approx(
            forecast["value"]["total"], 2)
    assert expected[0]["enough"] and expected[0]["forecast_hours"] > 0
    assert sum(result["next_steps_basis"].values()) == sum(1 for s in ind.active(expected_state) if s["phase_id"] is not None)
    assert result["active_orders"] == len(ind.active(expected_state))
    assert result["stalled_orders"] == sum(1 for s in expected_state.values() if s["state"] == "stalled")
    trend = result["top_bottleneck_by_week"]
    assert len(trend) == 12 and trend[-1]["week_ending"] == t
    assert trend[-1]["top_phase"]["id"] == expected[0]["phase_id"]
    week = trend[5]["week_ending"]
    then = ranked_at(week)
    top = then[0] if then and then[0]["forecast_hours"] > 0 else None
    assert (trend[5]["top_phase"] or {}).get("id") == (top and top["phase_id"])
    assert trend[5]["queue_hours"] == (None if top is None else pytest.approx(top["score_hours"], abs=1e-2))
    assert trend[5]["forecast_hours"] == (None if top is None else pytest.approx(top["forecast_hours"], abs=1e-2))


def test_rank_bottlenecks_needs_volume_and_orders_by_queue_time():
    t, hour, days = AS_OF, 3600.0, 14

    def flow(n, full_hours, in_window_hours, done, busy_seconds):
        return {"queue_n": n, "queue_seconds": full_hours * hour, "queue_overlap_seconds": in_window_hours * hour,
                "done": done, "busy_seconds": busy_seconds}

    flows = {1: flow(2, 300, 200, 2, 0.0), 2: flow(5, 12, 10, 14, 7 * ind.DAY), 3: flow(4, 5, 5, 7, 0.0)}
    active = [{"phase_id": 3, "state": "waiting", "since": t - timedelta(hours=6)},
              {"phase_id": 3, "state": "in_progress", "since": t - timedelta(hours=50)},
              {"phase_id": 4, "state": "not_started", "since": t - timedelta(hours=1)},
              {"phase_id": 4, "state": "waiting", "since": t - timedelta(days=40)},  # counts from the window's start
              {"phase_id": None, "state": "waiting", "since": t - timedelta(hours=99)}]
    table = selectors.rank_bottlenecks(flow=flows, active=active, as_of=t, peaks={2: 2}, days=days)
    # 3: 5 h measured + 6 h waiting now (and its waiting order makes the 5 waits) beats 2's 10 h; 1 (two long
    # waits) and 4 (two orders waiting) lack volume, and 4's 1 h + 14 days in the window outrank 1's 200 h
    assert [r["phase_id"] for r in table] == [3, 2, 4, 1]
    assert [r["rank"] for r in table] == [1, 2, 3, 4]
    by_id = {r["phase_id"]: r for r in table}
    assert by_id[3]["queue_score_hours"] == pytest.approx(11.0) and by_id[3]["in_progress"] == 1
    assert by_id[3]["queue_events"] == 5 and by_id[3]["enough_volume"] and not by_id[1]["enough_volume"]
    assert by_id[4]["queue_score_hours"] == pytest.approx(1 + 24 * days) and by_id[4]["waiting_orders"] == 2
    assert by_id[1]["queue_score_hours"] == pytest.approx(200.0)
    assert by_id[2]["utilisation"] == pytest.approx(7 / (days * 2)) and by_id[3]["utilisation"] is None
    assert by_id[2]["throughput_per_day"] == pytest.approx(14 / days)
    assert by_id[2]["mean_wait_hours"] == pytest.approx(12 / 5) and by_id[4]["mean_wait_hours"] is None


def test_rank_bottlenecks_forecast_counts_the_work_coming_on_the_route():
    """The forecast: visits expected (waiting now + the next route steps of the active orders) x the mean wait
    measured over the wait window, plus the recent-queue weight x the queue measured in the window."""
    t, hour, days = AS_OF, 3600.0, 14
    assert selectors.BOTTLENECK_ROUTE_STEPS >= 2  # the routes below are at most two steps long after each phase

    def flow(n, in_window_hours, wait_n, wait_hours):
        return {"queue_n": n, "queue_seconds": in_window_hours * hour, "queue_overlap_seconds": in_window_hours * hour,
                "done": n, "busy_seconds": 0.0, "wait_n": wait_n, "wait_seconds": wait_hours * hour}

    # Phase 10 had the longest queue lately; phase 30 little, but the work in the shop is heading for it.
    flows = {10: flow(6, 15, 8, 40), 20: flow(5, 10, 6, 12), 30: flow(5, 5, 10, 20)}
    routes = {1: [10, 20, 30], 2: [20, 30]}
    successors = {"50": 30, "30": 40}
    orders = [{"product_id": 1, "phase_id": 10, "state": "in_progress", "since": t - timedelta(hours=3)},  # -> 20, 30
              {"product_id": 1, "phase_id": 20, "state": "waiting", "since": t - timedelta(hours=2)},  # 20; -> 30
              {"product_id": 2, "phase_id": 20, "state": "in_progress", "since": t - timedelta(hours=1)},  # -> 30
              {"product_id": 9, "phase_id": 50, "state": "in_progress", "since": t - timedelta(hours=1)},  # off route: -> 30, 40
              {"product_id": 2, "phase_id": 30, "state": "waiting", "since": t - timedelta(hours=4)}]  # 30 (its route ends)
    table = selectors.rank_bottlenecks(flow=flows, active=orders, as_of=t, days=days, routes=routes,
                                       successors=successors)
    by_id = {r["phase_id"]: r for r in table}
    w = selectors.BOTTLENECK_RECENT_WEIGHT
    # phase 30: 1 waiting + 4 coming (orders 1, 2, 3 on their routes; 4 by the usual next phase) = 5 visits x 2 h mean
    assert (by_id[30]["visits_waiting"], by_id[30]["visits_upstream"]) == (1, 4)
    assert by_id[30]["forecast_mean_wait_hours"] == pytest.approx(2.0) and by_id[30]["forecast_waits_measured"] == 10
    assert by_id[30]["forecast_from_visits_hours"] == pytest.approx(10.0)
    assert by_id[30]["forecast_from_recent_hours"] == pytest.approx(w * (5 + 4))  # measured + waiting now
    assert by_id[30]["forecast_hours"] == pytest.approx(10.0 + w * 9)
    # phase 10: nobody waits for it or comes to it: only its recent queue counts
    assert by_id[10]["visits_waiting"] + by_id[10]["visits_upstream"] == 0
    assert by_id[10]["forecast_hours"] == pytest.approx(w * 15)
    # phase 20: order 2 waits, order 1 comes; 2 visits x 2 h + the recent queue (10 h measured + 2 h waiting)
    assert (by_id[20]["visits_waiting"], by_id[20]["visits_upstream"]) == (1, 1)
    assert by_id[20]["forecast_hours"] == pytest.approx(2 * 2.0 + w * 12)
    # 40 is coming for order 4, but never measured: no mean wait, no volume, no forecast
    assert by_id[40]["visits_upstream"] == 1 and by_id[40]["forecast_mean_wait_hours"] is None
    assert by_id[40]["forecast_hours"] == 0 and not by_id[40]["enough_volume"]
    # ranked by the forecast (phases with enough volume first; ties by id), where the recent queue alone puts 10 first
    expected = sorted(by_id.values(), key=lambda r: (not r["enough_volume"], -r["forecast_hours"], r["phase_id"]))
    assert [r["phase_id"] for r in table] == [r["phase_id"] for r in expected]
    assert table[0]["phase_id"] == 30 and max(table, key=lambda r: r["queue_score_hours"])["phase_id"] == 10
    assert [r["rank"] for r in table] == list(range(1, len(table) + 1))
    # without routes only the orders waiting now are visits
    bare = {r["phase_id"]: r for r in selectors.rank_bottlenecks(flow=flows, active=orders, as_of=t, days=days)}
    assert bare[30]["visits_upstream"] == 0 and bare[30]["forecast_from_visits_hours"] == pytest.approx(2.0)


def test_bottleneck_backtest_scores_against_the_queue_measured_next(frames):
    start, weeks, horizon = AS_OF - timedelta(weeks=20), 4, selectors.BOTTLENECK_BACKTEST_HORIZON_DAYS
    routes = ind.standard_routes(frames)
    rows = selectors.bottleneck_backtest(start=start, weeks=weeks)
    assert [r["date"] for r in rows] == [start + timedelta(weeks=k) for k in range(weeks)]
    for row in rows:
        t = row["date"]
        end = t + timedelta(days=horizon)
        # the truth: the queue measured over the next horizon days, by the same measure, known at t + horizon
        measured = sorted(ind.rank(ind.measured_flow(frames, end, days=horizon), ind.order_states(frames, end), end,
                                   days=horizon), key=lambda r: (-r["score_hours"], r["phase_id"]))
        actual = measured[0]["phase_id"] if measured and measured[0]["score_hours"] > 0 else None
        # the forecast: the ranking as users see it at t, with only what was known at t
        ranked = ind.rank(ind.measured_flow(frames, t), ind.order_states(frames, t), t, routes=routes,
                          successors=ind.stall_thresholds(frames, t)["next_phase"])
        predicted = ranked[0]["phase_id"] if ranked and ranked[0]["forecast_hours"] > 0 else None
        assert (row["actual"], row["predicted"]) == (actual, predicted), t
        assert row["hit"] == (None if actual is None or predicted is None else actual == predicted)
        if actual is not None:
            assert row["actual_queue_hours"] == pytest.approx(measured[0]["score_hours"], abs=1e-2)
    assert any(r["hit"] is not None for r in rows)


# --- KPIs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [AS_OF, PAST], ids=["snapshot", "past"])
def test_kpi_overview_matches_pandas(frames, t):
    date_from, date_to = AS_OF.date() - timedelta(days=120), AS_OF.date()
    result = selectors.kpi_overview(date_from=date_from, date_to=date_to, as_of=t)
    start, end = result["from"], result["to"]
    orders = frames["orders"]
    fin = orders[(orders["finished_at"] >= start) & (orders["finished_at"] < end) & (orders["finished_at"] <= t)]
    thresholds = ind.lead_thresholds(frames, t)["product"]
    lead = fin["lead_time_days"]
    assert result["finished_orders"] == len(fin) > 10
    assert result["lead_time_days"]["value"]["p50"] == pytest.approx(lead.median(), abs=1e-4)
    assert result["lead_time_days"]["value"]["p90"] == pytest.approx(lead.quantile(0.9), abs=1e-4)
    assert result["lead_time_days"]["value"]["mean"] == pytest.approx(lead.mean(), abs=1e-4)
    weeks = (end - start).total_seconds() / (7 * 86400)
    assert result["throughput_per_week"]["value"] == pytest.approx(len(fin) / weeks, abs=1e-4)
    on_time = sum(1 for o in fin.itertuples() if o.lead_time_days <= thresholds[int(o.product_id)]["p75"]) / len(fin)
    assert result["on_time_rate"]["value"] == pytest.approx(on_time, abs=1e-4)
    assert result["on_time_rate"]["basis"] == "theoretical"
    phases = frames["phases"]
    reworked = set(phases.loc[phases["is_rework"], "order_id"])
    assert result["rework_rate"]["value"] == pytest.approx(fin["id"].isin(reworked).mean(), abs=1e-4)
    # WIP at the window's end capped at as-of: the active orders (stalled and abandoned orders are not WIP)
    states = ind.order_states(frames, min(end, t))
    active = ind.active(states)
    ages = pd.Series([s["age_days"] for s in active])
    assert result["wip_at"] == min(end, t)
    assert result["wip"]["value"]["count"] == len(active)
    assert result["wip"]["stalled_orders_excluded"] == sum(1 for s in states.values() if s["state"] == "stalled")
    assert result["wip"]["value"]["age_days_p90"] == approx(ages.quantile(0.9) if len(ages) else None)


def test_kpi_by_product_and_by_phase_match_pandas(frames):
    by_product = selectors.kpi_by_product(as_of=AS_OF)
    start, end = by_product["from"], by_product["to"]
    orders = frames["orders"]
    fin = orders[(orders["finished_at"] >= start) & (orders["finished_at"] < end)]
    active = ind.active(ind.order_states(frames, AS_OF))
    got = {r["product"]["id"]: r for r in by_product["products"]}
    for pid, group in fin.groupby("product_id"):
        assert got[pid]["finished_orders"] == len(group)
        assert got[pid]["lead_time_days"]["value"]["p50"] == pytest.approx(group["lead_time_days"].median(), abs=1e-4)
    for pid, count in Counter(s["product_id"] for s in active).items():
        assert got[pid]["wip"]["value"]["count"] == count
    assert got[999]["product"]["name"] == "unknown product"
    by_phase = selectors.kpi_by_phase(as_of=AS_OF)
    phases = frames["phases"]
    ended = phases[(phases["ended_at"] >= start) & (phases["ended_at"] < end)]
    got = {r["phase"]["id"]: r for r in by_phase["phases"]}
    for phase_id, group in ended.groupby("phase_id"):
        assert got[phase_id]["executions"] == len(group)
        assert got[phase_id]["duration_hours"]["value"]["p90"] == pytest.approx(group["duration_seconds"].quantile(0.9) / 3600, abs=1e-4)
        assert got[phase_id]["rework_rate"]["value"] == pytest.approx(group["is_rework"].mean(), abs=1e-4)
    wip = Counter(s["phase_id"] for s in active if s["phase_id"] is not None)
    assert {pid: r["wip"]["value"]["count"] for pid, r in got.items() if r["wip"]["value"]["count"]} == dict(wip)


# --- risk --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [AS_OF, PAST], ids=["snapshot", "past"])
def test_risk_queue_scores_the_active_orders_by_independent_components(states_world, t):
    states = expected_states(states_world, t)
    active = {s["order_id"]: s for s in ind.active(states)}
    ranked = ind.rank(ind.measured_flow(states_world, t), states, t, routes=ind.standard_routes(states_world),
                      successors=ind.stall_thresholds(states_world, t)["next_phase"])
    ranks = {r["phase_id"]: r["rank"] for r in ranked if r["enough"] and r["score_hours"] > 0}
    defects = ind.defect_rates(states_world, t)
    scores = selectors.risk_scores(as_of=t)
    assert set(scores) == set(active) and len(active) >= 3
    queue = selectors.risk_queue(as_of=t, limit=1000)
    assert [r["order_id"] for r in queue["orders"]] == sorted(scores, key=lambda oid: (-scores[oid], oid))
    weights = {"age": 0.40, "bottleneck": 0.25, "rework": 0.15, "defects": 0.20}  # RISK_METHOD
    assert queue["weights"] == weights
    for row in queue["orders"]:
        s = active[row["order_id"]]
        late, p75, age = s["late_days"], s["p75_days"], s["age_days"]
        components = {
            "age": min(1.0, age / late) if late else 0.0,
            "bottleneck": {1: 1.0, 2: 2 / 3, 3: 1 / 3}.get(ranks.get(s["phase_id"]), 0.0),
            "rework": min(1.0, s["reworks"] / 2),
            "defects": defects.get(s["product_id"], 0.0),
        }
        assert row["components"] == {k: pytest.approx(v, abs=1e-4) for k, v in components.items()}, row["order_id"]
        assert row["score"] == pytest.approx(sum(weights[k] * components[k] for k in weights), abs=1e-3)
        assert 0.0 <= row["score"] <= 1.0 and row["state"] == s["state"]
        codes = {r["code"] for r in row["reasons"]}
        want = {"older_than_p90"} if late and age > late else ({"older_than_p75"} if p75 and age > p75 else set())
        want |= {"at_bottleneck"} if components["bottleneck"] else set()
        want |= {"reworks"} if s["reworks"] else set()
        want |= {"product_defects"} if components["defects"] >= 0.5 else set()
        assert codes == want, row["order_id"]
    assert any(r["components"]["defects"] > 0 for r in queue["orders"])
    stalled = sorted((s for s in states.values() if s["state"] == "stalled"), key=lambda s: (s["last_event_at"], s["order_id"]))
    assert queue["active_orders"] == len(active) and queue["stalled"]["count"] == len(stalled) > 0
    assert [s["order_id"] for s in queue["stalled"]["orders"]] == [s["order_id"] for s in stalled]
    assert queue["open_orders"] == sum(1 for s in states.values() if s["state"] != "finished")


# --- routes, employees, aggregates -------------------------------------------------------------------------


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


def distinct_match_rate(assignments: pd.DataFrame, phase_ids: set) -> tuple[float, int, int]:
    """MATCH_RATE_RULE in pandas: the share of the distinct order-phase ids named by assignments that exist; and
    the rows carrying a matched id, of all rows."""
    values = assignments["order_phase_id"].dropna()
    distinct = set(values)
    return len(distinct & phase_ids) / len(distinct), int(values.isin(phase_ids).sum()), len(values)


def test_employee_gate_reports_measured_rate(frames):
    rate, matched_rows, rows = distinct_match_rate(frames["assignments"], set(frames["phases"]["id"]))
    result = selectors.kpi_by_employee(include_names=False)
    assert result["status"] == "NOT_SUPPORTED_BY_DATA"
    assert result["measured"] == pytest.approx(rate, abs=1e-4)
    assert (result["matched"], result["assignments"]) == (matched_rows, rows)
    assert result["threshold"] == settings.EMPLOYEE_MATCH_RATE_GATE


@pytest.mark.parametrize(("match_rate", "supported"), [(0.85, False), (0.97, True)])
def test_employee_gate_flips_at_the_threshold(db, match_rate, supported):
    build_factory(match_rate=match_rate)
    from orders.models import OrderPhase, PhaseAssignment

    phase_ids = set(OrderPhase.objects.values_list("id", flat=True))
    rows = list(PhaseAssignment.objects.values("order_phase_id", "employee_id", "is_leader"))
    measured, _, _ = distinct_match_rate(pd.DataFrame(rows), phase_ids)
    assert (measured >= settings.EMPLOYEE_MATCH_RATE_GATE) is supported
    result = selectors.kpi_by_employee(include_names=False)
    assert (result["status"] == "OK") is supported
    if supported:
        assert result["match_rate"]["value"] == pytest.approx(measured, abs=1e-4)
        durations = dict(OrderPhase.objects.values_list("id", "duration_seconds"))
        for employee in result["employees"]:
            mine = [r for r in rows if r["employee_id"] == employee["employee_id"] and r["order_phase_id"] in phase_ids]
            assert employee["phases_worked"] == len(mine)
            hours = sum(durations[r["order_phase_id"]] or 0 for r in mine) / 3600
            assert employee["elapsed_hours"]["value"] == pytest.approx(hours, abs=1e-3)
            assert "name" not in employee


def test_refresh_aggregates_is_idempotent_and_matches_the_rows(frames):
    from orders.models import OrderSummary, ProductPhaseStat

    def snapshot():
        return (list(OrderSummary.objects.order_by("order_id").values()),
                list(ProductPhaseStat.objects.order_by("product_id", "phase_id")
                     .values("product_id", "phase_id", "n", "duration_p50_seconds", "duration_p90_seconds")))

    before = snapshot()
    refresh_aggregates()
    refresh_aggregates()
    assert snapshot() == before
    summaries, stats = before
    phases, errors = frames["phases"], frames["errors"]
    assert len(summaries) == len(frames["orders"])
    per_order = phases.groupby("order_id")
    error_counts = errors.groupby("order_id").size()
    for s in summaries:
        assert s["phase_count"] == per_order.size().get(s["order_id"], 0)
        assert s["rework_count"] == per_order["is_rework"].sum().get(s["order_id"], 0)
        assert s["error_count"] == error_counts.get(s["order_id"], 0)
    timed = phases[phases["duration_seconds"].notna()].merge(
        frames["orders"][["id", "product_id"]].rename(columns={"id": "order_id"}), on="order_id")
    expected = timed.groupby(["product_id", "phase_id"])["duration_seconds"]
    assert len(stats) == expected.ngroups
    for s in stats:
        group = expected.get_group((s["product_id"], s["phase_id"]))
        assert s["n"] == len(group)
        assert s["duration_p90_seconds"] == pytest.approx(group.quantile(0.9), rel=1e-9)


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
