"""The selector gathers the WIP, routes, durations, capacity and arrivals at an as-of moment."""

from __future__ import annotations

from collections import Counter

import pytest

from orders.models import ManufacturingOrder, OrderPhase
from tests.whatif.factory import AS_OF, D, build, empty_domain_tables, order, phase_row
from whatif.selectors import capacity_by_phase, gather_sim_input, observed_family_routes, weekly_completions

pytestmark = pytest.mark.django_db


def test_wip_routes_and_progress_at_as_of():
    from orders.selectors import order_states

    build()
    si = gather_sim_input(as_of=AS_OF, arrival_weeks=8)
    got = {o.order_id: (o.route, o.family, None if o.in_service_elapsed is None else round(o.in_service_elapsed, 6),
                        round(o.created_day, 6)) for o in si.orders}
    # 5003 (orphan product, phase 1 done, no phase row or route step ahead) waits where the order state places
    # it, if anywhere, then follows the route observed for its family (1, 3, 4) after phase 1
    placed = order_states(as_of=AS_OF, order_ids=[5003])[5003]["phase_id"]
    assert got == {
        5001: ((2, 3, 4), "K1", 0.5, -5.0),  # standard route, phase 2 in service for half a day
        5002: ((1, 2, 4), "K2", None, -1.0),  # nothing started: the whole standard route
        5003: ((3, 4) if placed in (None, 3) else (placed, 3, 4), "UNKNOWN", None, -3.0),
        5004: ((4,), "K1", None, -4.0),  # finished after as-of: open then, its last phase still ahead
    }
    # 5001 and 5002: their own rows ahead (phase 3; phase 1), then the standard route after them; 5004: its own
    # row ahead (phase 4, started after as-of: the export holds not-started rows, so it was planned then)
    assert si.meta["route_basis"] == {"own_rows_then_standard": 2, "own_rows": 1, "family_observed": 1}
    # waited since the last phase ended (or the creation): 5002 1 day, 5003 1 day, 5004 1.5 days
    assert {o.order_id: o.waiting_elapsed and round(o.waiting_elapsed, 6) for o in si.orders} == \
        {5001: None, 5002: 1.0, 5003: 1.0, 5004: 1.5}
    assert si.meta["wip_in_service"] == 1


def test_durations_are_the_observed_ones_before_as_of(monkeypatch):
    monkeypatch.setattr("whatif.selectors.DURATION_WINDOW_DAYS", 90)  # the whole constructed history
    build()
    si = gather_sim_input(as_of=AS_OF)
    # 20 history K1 orders + WIP 5004 (ended phase 1 before as-of) and 5001 (1 day): all K1 phase-1 samples
    assert si.durations_family_phase[("K1", 1)] == tuple([0.5] * 21 + [1.0])
    assert si.durations_family_phase[("UNKNOWN", 3)] == tuple([0.5] * 6)
    assert ("UNKNOWN", 2) not in si.durations_family_phase
    # 5004's phase 4 ended after as-of: not a sample (no look-ahead)
    assert len(si.durations_phase[4]) == 26


def test_waits_before_phases_are_observed_before_as_of(monkeypatch):
    monkeypatch.setattr("whatif.selectors.DURATION_WINDOW_DAYS", 90)  # the whole constructed history
    build()
    si = gather_sim_input(as_of=AS_OF)
    # phase 2: the 20 history orders (no wait), 5004 (half a day), 5001 (2.5 days after its phase 1 ended)
    assert si.gaps_phase[2] == tuple([0.0] * 20 + [0.5, 2.5])
    # phase 1: waits since creation: 26 history orders and 5004 start at creation, 5001 and 5003 a day later
    assert si.gaps_phase[1] == tuple([0.0] * 27 + [1.0, 1.0])
    assert si.gaps_family_phase[("K1", 1)] == tuple([0.0] * 21 + [1.0])
    assert ("K2", 1) not in si.gaps_family_phase


def test_observed_family_route_is_the_most_common_sequence():
    build()
    assert observed_family_routes(as_of=AS_OF) == {"K1": (1, 2, 3, 4), "UNKNOWN": (1, 3, 4), "*": (1, 2, 3, 4)}


def test_arrival_rate_and_mix_come_from_recent_orders():
    build()
    si = gather_sim_input(as_of=AS_OF, arrival_weeks=1)
    # created in the last 7 days: 5001 (-5d), 5002 (-1d), 5003 (-3d), 5004 (-4d)
    assert si.arrival_rate_per_day == pytest.approx(4 / 7)
    assert sorted(m.product_id for m in si.arrival_mix) == [100, 100, 200, 999]
    real = gather_sim_input(as_of=AS_OF, real_arrivals_days=7).fixed_arrivals
    assert [(o.order_id, o.route, round(o.arrival_day, 6)) for o in real] == [(5005, (1, 2, 4), 3.0)]


def test_capacity_is_the_work_sustained_in_busy_weeks():
    empty_domain_tables()
    ManufacturingOrder.objects.bulk_create([order(i, 100, AS_OF - 400 * D) for i in range(1, 40)])
    rows = [
        # phase 2: three spans open over the whole year (one still open) -> 3 stations
        phase_row(1, 1, 2, 1, AS_OF - 380 * D, AS_OF + D),
        phase_row(2, 2, 2, 1, AS_OF - 370 * D, None),
        phase_row(3, 3, 2, 1, AS_OF - 366 * D, AS_OF + 5 * D),
        # phase 3: open only in the last 5 days (under 10% of the weeks) -> p90 is 0, floor 1 station
        phase_row(4, 4, 3, 1, AS_OF - 5 * D, None),
    ]
    # phase 4: a burst of 30 one-hour spans at the same moment once, else idle: a peak of 30, but 1 station
    rows += [phase_row(10 + k, 5 + k, 4, 1, AS_OF - 100 * D, AS_OF - 100 * D + D / 24) for k in range(30)]
    OrderPhase.objects.bulk_create(rows)
    cap = capacity_by_phase(as_of=AS_OF)
    assert cap[2]["servers"] == 3 and cap[2]["p90_weekly_concurrent"] == 3 and cap[2]["in_service_now"] == 3
    assert cap[3]["servers"] == 1 and cap[3]["p90_weekly_concurrent"] == 0 and cap[3]["max_concurrent"] == 1
    assert cap[4]["servers"] == 1 and cap[4]["max_concurrent"] == 30
    assert cap[4]["max_weekly_concurrent"] == round(30 / 24 / 7, 3)


def _two_phase_orders(first_id: int, phase: int, readies: list[float], starts: list[float], touch: float) -> tuple:
    """Orders whose phase 1 ends at `ready` (days after AS_OF - 100 days) and whose `phase` runs from `start` for
    `touch` days."""
    base = AS_OF - 100 * D
    orders, rows = [], []
    for k, (ready, start) in enumerate(zip(readies, starts, strict=True)):
        oid = first_id + k
        orders.append(order(oid, 100, base + (ready - 0.5) * D))
        rows += [phase_row(2 * oid, oid, 1, 1, base + (ready - 0.5) * D, base + ready * D),
                 phase_row(2 * oid + 1, oid, phase, 2, base + start * D, base + (start + touch) * D)]
    return orders, rows


def test_a_phase_that_starts_work_at_a_steady_rate_however_long_its_queue_gets_fewer_stations():
    """Phase 2 has a short touch time (2 h) but starts one order a day whatever waits (a queue of 1-2 for a month,
    5-6 for a month, 1-2 again): throughput-limited, one station with a one-day cycle instead of the 12 orders a
    day the concurrency rule's station would start. Phase 3 waits 1.5 days before every start whatever the load,
    and starts faster when more wait (a delay, not a limit): the concurrency rule stays."""
    empty_domain_tables()
    days = range(90)
    waits = [1.5 if d < 30 or d >= 60 else 5.0 for d in days]
    gate_orders, gate_rows = _two_phase_orders(1, 2, [d + 0.5 - w for d, w in zip(days, waits, strict=True)],
                                               [d + 0.5 for d in days], 1 / 12)
    # phase 3: one order a day for 40 days, then four a day for 10 days, each starting 1.5 days after it is ready
    readies = [d + 0.3 for d in range(40)] + [40 + k / 4 + 0.1 for k in range(40)]
    delay_orders, delay_rows = _two_phase_orders(1000, 3, readies, [r + 1.5 for r in readies], 1 / 12)
    ManufacturingOrder.objects.bulk_create(gate_orders + delay_orders)
    OrderPhase.objects.bulk_create(gate_rows + delay_rows)

    cap = capacity_by_phase(as_of=AS_OF)
    gate, delay = cap[2], cap[3]
    assert gate["concurrency_servers"] == 1 and gate["p90_weekly_concurrent"] < 0.2
    assert gate["rule"] == "throughput" and gate["saturation"]["flat"]
    assert gate["saturation"]["start_rate_long_queue"] == pytest.approx(1.0, rel=0.15)
    assert gate["servers"] == 1
    assert gate["station_cycle_days"] == pytest.approx(1.0, rel=0.15)  # one order a day, not 12
    assert gate["per_station_rate_per_day"] < 0.2 * 12
    assert delay["rule"] == "concurrency" and not delay["saturation"]["flat"]
    assert delay["saturation"]["start_rate_long_queue"] > 1.25 * delay["saturation"]["start_rate_short_queue"]
    assert delay["servers"] == delay["concurrency_servers"] and delay["station_cycle_days"] is None

    si = gather_sim_input(as_of=AS_OF - 10 * D)  # before the last orders: the same limit, and the engine keeps it
    assert si.meta["capacity"]["2"]["rule"] == "throughput"
    touch = si.durations_phase[2]
    assert sum(touch) / len(touch) == pytest.approx(1 / 12, rel=0.05)
    # the station is kept for the cycle, whatever the touch-time samples' mean
    assert si.station_hold[2] * sum(touch) / len(touch) == pytest.approx(si.meta["capacity"]["2"]["station_cycle_days"],
                                                                        rel=1e-3)
    assert 3 not in si.station_hold


def test_weekly_completions_count_real_finishes():
    build()
    start = AS_OF - 8 * D
    expected = [0, 0]
    for f in ManufacturingOrder.objects.filter(finished_at__gt=start).values_list("finished_at", flat=True):
        week = int((f - start).total_seconds() // (7 * 86400))
        if week < 2:
            expected[week] += 1
    assert weekly_completions(start=start, weeks=2) == expected
    assert sum(expected) >= 1


def test_risk_first_uses_the_risk_queue_scores():
    from orders.selectors import risk_scores

    build()
    si = gather_sim_input(as_of=AS_OF, with_risk=True)
    assert si.meta["risk_basis"] == "orders.selectors.risk_scores"
    scores = risk_scores(as_of=AS_OF)
    assert {o.order_id: o.risk for o in si.orders} == {oid: scores.get(oid, 0.0) for oid in (5001, 5002, 5003, 5004)}


def test_initial_state_is_the_order_state_without_stalled_or_abandoned_orders():
    from orders.models import OrderAbandonment
    from orders.selectors import active_orders_at, open_orders_at

    build()
    # 5006: K1, its phase 1 ended 39 days ago and nothing since: stalled (threshold: the 7-day floor here).
    # 5007: K2, created two days ago, marked abandoned by a steward.
    ManufacturingOrder.objects.bulk_create([order(5006, 100, AS_OF - 40 * D), order(5007, 200, AS_OF - 2 * D)])
    OrderPhase.objects.bulk_create([phase_row(9010, 5006, 1, 1, AS_OF - 40 * D, AS_OF - 39 * D),
                                    phase_row(9011, 5006, 2, 2, None, None, created=AS_OF - 40 * D)])
    OrderAbandonment.objects.create(order_id=5007, reason="cancelled by the customer")
    si = gather_sim_input(as_of=AS_OF)
    active = {r["order_id"]: r for r in active_orders_at(as_of=AS_OF)}
    states = {r["order_id"]: r["state"] for r in open_orders_at(as_of=AS_OF)}
    assert (states[5006], states[5007]) == ("stalled", "abandoned")
    assert {o.order_id for o in si.orders} == set(active) == {5001, 5002, 5003, 5004}
    assert si.meta["wip_orders"] == len(active) == 4
    assert (si.meta["stalled_orders_excluded"], si.meta["abandoned_orders_excluded"]) == (1, 1)
    # 5001 in progress; 5002 and 5004 before their next phase row; 5003 (no route step or row ahead) as placed
    assert si.meta["placement_basis"] == dict(Counter(r["placement_basis"] for r in active.values()))
    assert {k: active[k]["placement_basis"] for k in (5001, 5002, 5004)} == {
        5001: "phase_in_progress", 5002: "next_phase_row", 5004: "next_phase_row"}
    assert si.meta["progress_located_coverage"] == sum(r["phase_id"] is not None for r in active.values()) / 4
    for o in si.orders:
        state = active[o.order_id]
        in_state = (AS_OF - state["since"]).total_seconds() / 86400
        if state["phase_id"] is not None:
            assert o.route[0] == state["phase_id"]  # the simulation starts where the order state places it
        if state["state"] == "in_progress":
            assert (o.in_service_elapsed, o.waiting_elapsed) == (pytest.approx(in_state), None)
        else:
            assert (o.in_service_elapsed, o.waiting_elapsed) == (None, pytest.approx(in_state))
    assert si.meta["wip_in_service"] == sum(r["state"] == "in_progress" for r in active.values()) == 1


def test_wip_follows_the_order_state_at_a_past_as_of():
    from orders.selectors import active_orders_at

    build()
    # at -2.75 days: 5001 waits for phase 2 (phase 1 ended at -3d), 5002 does not exist yet, 5003 has not
    # started phase 1 (created -3d), 5004 is in phase 2 (started -3d; it ended at -2.5d, after that as-of)
    past = AS_OF - 2.75 * D
    si = gather_sim_input(as_of=past)
    active = {r["order_id"]: r for r in active_orders_at(as_of=past)}
    assert {o.order_id for o in si.orders} == set(active) == {5001, 5003, 5004}
    got = {o.order_id: (o.route, o.in_service_elapsed is not None, round(o.waiting_elapsed or o.in_service_elapsed, 6))
           for o in si.orders}
    assert got == {5001: ((2, 3, 4), False, 0.25), 5003: ((1, 3, 4), False, 0.25), 5004: ((2, 3, 4), True, 0.25)}
    assert {k: active[k]["state"] for k in active} == {5001: "waiting", 5003: "not_started", 5004: "in_progress"}


def test_remaining_route_from_the_position_phase():
    from whatif.selectors import remaining_route

    route = (1, 2, 3, 4)
    assert remaining_route(route, (1,), 2) == (2, 3, 4)  # waiting before the next step
    assert remaining_route(route, (1, 2), 2) == (2, 3, 4)  # in progress at the furthest step
    assert remaining_route(route, (1, 2, 3), 1) == (1, 4)  # back at an earlier phase (a rework), then onward
    assert remaining_route(route, (1,), 9) == (9, 2, 3, 4)  # at a phase off the route, then the rest of it
    assert remaining_route(route, (), 3) == (3, 4)  # placed further on by the state (e.g. the route's next step)
    assert remaining_route(route, (1, 2), None) == (3, 4)  # not placed: after the furthest step reached


def test_delay_elasticity_is_the_measured_growth_of_waits_with_the_shop_load():
    from whatif.selectors import DAY, delay_load_elasticity

    # the shop starts 5 orders a day for 100 days, then 20 a day; waits before phase 7 are 0.5 day, then 2 days
    starts = [k * DAY / 5 for k in range(500)] + [100 * DAY + k * DAY / 20 for k in range(2000)]
    rows = []
    for k in range(60, 800):  # four waits a day from day 15
        ready = k * DAY / 4
        wait = (0.5 if ready < 100 * DAY else 2.0) * DAY
        rows += [(7, 0.0, 0.0, 0.1, ready, ready + wait), (8, 0.0, 0.0, 0.1, ready, ready + DAY)]
    grows = delay_load_elasticity(rows, starts, skip={8})
    assert grows["elasticity"] == pytest.approx(1.0, abs=0.1)  # four times the load, four times the wait
    flat = delay_load_elasticity(rows, starts, skip={7})
    assert flat["elasticity"] == 0.0  # the same wait whatever the load
    both = delay_load_elasticity(rows, starts, skip=set())  # each phase its own, the pool in between
    assert both["by_phase"][7] == pytest.approx(1.0, abs=0.1) and both["by_phase"][8] == 0.0
    assert 0.0 < both["elasticity"] < both["by_phase"][7]
    assert delay_load_elasticity(rows[:400], starts, skip=set())["elasticity"] == 0.0  # too few waits to say
