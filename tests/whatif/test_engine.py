"""The what-if engine on constructed cases: determinism, backends, capacity, priority rules, overrides."""

from __future__ import annotations

import json
import random

import pytest

from whatif.engine import ArrivalMix, Scenario, SimInput, SimOrder, capacity_for, run_once, simulate


def line_input(n_orders=60, seed=3, servers=None, arrivals=True) -> SimInput:
    """Four phases in a line, random routes and exponential-ish durations, optional arrivals."""
    rng = random.Random(seed)
    phases = {10: "moulding", 20: "gelcoat", 30: "lamination", 40: "finishing"}
    fam = ("K1", "K2")
    dfp = {(f, p): tuple(sorted(rng.expovariate(1 / (0.3 + 0.1 * i)) for _ in range(50)))
           for f in fam for i, p in enumerate(phases)}
    orders = []
    for k in range(n_orders):
        start = rng.randrange(4)
        orders.append(SimOrder(key=f"wip:{k:03d}", order_id=k, product_id=k % 5, family=fam[k % 2],
                               route=tuple(list(phases)[start:]), created_day=-rng.random() * 30,
                               in_service_elapsed=0.05 if k % 7 == 0 else None, risk=rng.random()))
    gaps = {p: tuple(sorted(rng.expovariate(4.0) for _ in range(30))) for p in phases}
    return SimInput(phases=phases, capacity=servers or {10: 2, 20: 1, 30: 2, 40: 2},
                    durations_family_phase=dfp, durations_phase={}, durations_global=(0.5,), orders=orders,
                    gaps_phase=gaps,
                    arrival_rate_per_day=2.0 if arrivals else 0.0,
                    arrival_mix=[ArrivalMix(1, "K1", (10, 20, 30, 40)), ArrivalMix(2, "K2", (10, 20, 30, 40))])


def test_same_seed_gives_identical_output_to_the_last_digit():
    si = line_input()
    sc = Scenario(priority_rule="SPT", capacity_overrides=((20, "servers", 2),), horizon_days=28, seed=7)
    a, b = simulate(si, sc), simulate(line_input(), sc)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["baseline"]["orders_finished"] > 0


def test_different_seed_draws_different_samples():
    si = line_input()
    a = run_once(si, Scenario(horizon_days=28, seed=1))
    b = run_once(si, Scenario(horizon_days=28, seed=2))
    assert a["finish_days"] != b["finish_days"]
    assert a["kpis"]["orders_in"]["arrivals"] != b["kpis"]["orders_in"]["arrivals"] or \
        a["kpis"]["mean_queue_wait_days"] != b["kpis"]["mean_queue_wait_days"]


@pytest.mark.parametrize("rule", ["FIFO", "SPT", "LPT", "OLDEST_FIRST", "RISK_FIRST"])
def test_heap_loop_matches_simpy_exactly(rule):
    si = line_input()
    sc = Scenario(priority_rule=rule, horizon_days=21, seed=11)
    heap, ref = run_once(si, sc, backend="heap"), run_once(si, sc, backend="simpy")
    assert heap["finish_days"] == ref["finish_days"]
    assert heap["kpis"] == ref["kpis"]


def test_more_capacity_at_the_bottleneck_never_lowers_throughput():
    si = line_input(n_orders=120, servers={10: 2, 20: 1, 30: 2, 40: 3})
    base = run_once(si, Scenario(horizon_days=28, seed=5))
    bottleneck = base["kpis"]["bottleneck_phase_id"]
    assert bottleneck == 20  # the single-server phase
    previous = base["kpis"]["orders_finished"]
    for servers in (2, 3, 4, 6):
        r = run_once(si, Scenario(horizon_days=28, seed=5, capacity_overrides=((bottleneck, "servers", servers),)))
        assert r["kpis"]["orders_finished"] >= previous
        previous = r["kpis"]["orders_finished"]
    assert previous > base["kpis"]["orders_finished"]


def test_spt_lowers_mean_queue_wait_against_fifo_single_machine():
    # One server, busy until t=1 with an order already in service; six jobs queue behind it.
    # With every job waiting, SPT minimises the mean wait (Smith's rule). Family S takes 1 day, L 4 days;
    # FIFO serves by key: L,S,L,S,L,S.
    orders = [SimOrder(key="wip:a", order_id=99, product_id=None, family="B", route=(1,), in_service_elapsed=1.0)]
    orders += [SimOrder(key=f"wip:{k}", order_id=k, product_id=None, family="L" if k % 2 == 0 else "S", route=(1,))
               for k in range(6)]
    si = SimInput(phases={1: "gelcoat"}, capacity={1: 1},
                  durations_family_phase={("L", 1): (4.0,), ("S", 1): (1.0,)},
                  durations_phase={1: (2.0,)}, durations_global=(1.0,), orders=orders)  # residuals: phase level
    fifo = run_once(si, Scenario(priority_rule="FIFO", horizon_days=100, arrivals=False))
    spt = run_once(si, Scenario(priority_rule="SPT", horizon_days=100, arrivals=False))
    lpt = run_once(si, Scenario(priority_rule="LPT", horizon_days=100, arrivals=False))
    # starts: FIFO 1,5,6,10,11,15 (sum 48); SPT 1,2,3,4,8,12 (30); LPT 1,5,9,13,14,15 (57); plus 0 for wip:a
    assert fifo["kpis"]["mean_queue_wait_days"]["1"] == round(48 / 7, 4)
    assert spt["kpis"]["mean_queue_wait_days"]["1"] == round(30 / 7, 4)
    assert lpt["kpis"]["mean_queue_wait_days"]["1"] == round(57 / 7, 4)
    assert fifo["finish_days"]["wip:0"] == 5.0 and spt["finish_days"]["wip:0"] == 8.0
    # the makespan does not depend on the order
    assert max(fifo["finish_days"].values()) == max(spt["finish_days"].values()) == 16.0


def test_spt_beats_fifo_on_a_random_line_too():
    si = line_input(n_orders=150, arrivals=False)
    fifo = run_once(si, Scenario(priority_rule="FIFO", horizon_days=60, arrivals=False, seed=4))
    spt = run_once(si, Scenario(priority_rule="SPT", horizon_days=60, arrivals=False, seed=4))
    assert spt["kpis"]["mean_queue_wait_days_overall"] < fifo["kpis"]["mean_queue_wait_days_overall"]


def test_coefficient_overrides_scale_matching_steps_only():
    orders = [SimOrder(key="wip:1", order_id=1, product_id=7, family="K2", route=(1, 2)),
              SimOrder(key="wip:2", order_id=2, product_id=8, family="K1", route=(1, 2))]
    si = SimInput(phases={1: "a", 2: "b"}, capacity={1: 5, 2: 5}, durations_family_phase={},
                  durations_phase={1: (2.0,), 2: (1.0,)}, durations_global=(1.0,), orders=orders)
    base = run_once(si, Scenario(horizon_days=30, arrivals=False))
    assert base["finish_days"] == {"wip:1": 3.0, "wip:2": 3.0}
    r = run_once(si, Scenario(horizon_days=30, arrivals=False, coef_overrides=((1, "K2", None, 1.5), (None, None, 8, 2.0))))
    assert r["finish_days"] == {"wip:1": 4.0, "wip:2": 6.0}
    out = simulate(si, Scenario(horizon_days=30, arrivals=False, coef_overrides=((1, "K2", None, 1.5),)))
    assert out["top_affected_orders"] == [{"key": "wip:1", "order_id": 1, "product_id": 7, "baseline_finish_day": 3.0,
                                           "scenario_finish_day": 4.0, "change_days": 1.0}]
    assert out["deltas"]["mean_remaining_lead_time_days"] == 0.5


def test_in_service_step_takes_the_residual_of_a_longer_sample():
    o = SimOrder(key="wip:1", order_id=1, product_id=None, family="X", route=(1,), in_service_elapsed=2.5)
    si = SimInput(phases={1: "a"}, capacity={1: 1}, durations_family_phase={},
                  durations_phase={1: (1.0, 2.0, 3.0, 3.0)}, durations_global=(1.0,), orders=[o])
    # only the samples longer than 2.5 days (3.0, 3.0) qualify: residual 0.5
    assert run_once(si, Scenario(horizon_days=10, arrivals=False))["finish_days"] == {"wip:1": 0.5}


def test_waits_before_phases_delay_the_order_without_a_server():
    orders = [SimOrder(key="wip:1", order_id=1, product_id=None, family="X", route=(1, 2)),
              SimOrder(key="wip:2", order_id=2, product_id=None, family="X", route=(1, 2), waiting_elapsed=0.5)]
    si = SimInput(phases={1: "a", 2: "b"}, capacity={1: 2, 2: 2}, durations_family_phase={},
                  durations_phase={1: (1.0,), 2: (1.0,)}, durations_global=(1.0,), orders=orders,
                  gaps_phase={1: (0.25, 2.0), 2: (0.5,)})
    r = run_once(si, Scenario(horizon_days=30, arrivals=False, seed=1))
    # wip:2 already waited 0.5 days: only the 2.0-day wait qualifies, 1.5 left; wip:1 draws 0.25 or 2.0
    u1 = r["finish_days"]["wip:1"] - 1.0 - 0.5 - 1.0
    assert u1 in (0.25, 2.0)
    assert r["finish_days"]["wip:2"] == 1.5 + 1.0 + 0.5 + 1.0
    assert r["kpis"]["utilisation"]["1"] == round(2.0 / 60, 4)


def test_orders_past_every_observed_sample_are_overdue_not_stalled_and_durations_never_change_that():
    orders = [SimOrder(key="wip:1", order_id=1, product_id=None, family="X", route=(1,), waiting_elapsed=400.0),
              SimOrder(key="wip:2", order_id=2, product_id=None, family="X", route=(1,), in_service_elapsed=50.0),
              SimOrder(key="wip:3", order_id=3, product_id=None, family="X", route=(1,), waiting_elapsed=1.0)]
    si = SimInput(phases={1: "a"}, capacity={1: 1}, durations_family_phase={}, durations_phase={1: (1.0, 3.0)},
                  durations_global=(1.0,), orders=orders, gaps_phase={1: (0.5, 2.0)}, stalled_orders=8)
    for backend in ("heap", "simpy"):
        r = run_once(si, Scenario(horizon_days=30, arrivals=False, seed=2), backend=backend)
        # stalled orders are the order-state model's (not simulated), whatever the scenario
        assert r["kpis"]["orders_stalled"] == 8
        # wip:2 has been in service longer than any sample: it ends at once and frees the station
        assert r["finish_days"]["wip:2"] == 0.0 and r["kpis"]["orders_overdue_at_start"] == 1
        # wip:1 waited longer than any delay: it queues at once and takes its touch time
        assert r["finish_days"]["wip:1"] in (1.0, 3.0)
        # wip:3 waited 1 day: only the 2-day delay qualifies, residual 1.0, then the station (after wip:1)
        assert r["finish_days"]["wip:3"] >= 2.0
        assert r["kpis"]["orders_unfinished"] == 0
    faster = run_once(si, Scenario(horizon_days=30, arrivals=False, seed=2, coef_overrides=((None, None, None, 0.5),)))
    assert faster["kpis"]["orders_stalled"] == 8 and faster["kpis"]["orders_overdue_at_start"] == 1


def test_capacity_overrides_absolute_and_multiplier():
    si = line_input()
    sc = Scenario(capacity_overrides=((10, "servers", 5), (30, "multiplier", 2.5), (40, "multiplier", 0.1)))
    assert capacity_for(si, sc) == {10: 5, 20: 1, 30: 5, 40: 1}


def test_arrivals_follow_the_rate_and_can_be_switched_off():
    si = line_input(n_orders=0)
    si.arrival_rate_per_day = 10.0
    on = run_once(si, Scenario(horizon_days=100, seed=3))
    off = run_once(si, Scenario(horizon_days=100, seed=3, arrivals=False))
    assert 900 <= on["kpis"]["orders_in"]["arrivals"] <= 1100
    assert off["kpis"]["orders_in"]["arrivals"] == 0 and off["kpis"]["orders_finished"] == 0


def test_unknown_priority_rule_is_refused():
    with pytest.raises(ValueError, match="priority rule"):
        run_once(line_input(), Scenario(priority_rule="RANDOM"))


def test_identical_across_processes_and_hash_seeds():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json; from tests.whatif.test_engine import line_input; from whatif.engine import Scenario, simulate; "
            "print(json.dumps(simulate(line_input(), Scenario(priority_rule='OLDEST_FIRST', horizon_days=21, seed=9)), "
            "sort_keys=True))")
    root = Path(__file__).resolve().parents[2]
    outs = {subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(h), "PATH": "/usr/bin:/bin"}).stdout for h in (1, 2)}
    assert len(outs) == 1
    here = simulate(line_input(), Scenario(priority_rule="OLDEST_FIRST", horizon_days=21, seed=9))
    assert outs.pop().strip() == json.dumps(here, sort_keys=True)


def shop_input(n_orders=80, seed=5) -> SimInput:
    """line_input with a Mon-Fri 06:00-22:00 calendar (phase 20 works around the clock), rework and delays."""
    si = line_input(n_orders=n_orders, seed=seed)
    weekdays = tuple(d < 5 and 6 <= h < 22 for d in range(7) for h in range(24))
    si.default_calendar = weekdays
    si.calendars = {20: tuple([True] * 168)}
    si.calendar_origin_hour = 4 * 24 + 20.5  # Friday 20:30
    si.rework_probability = {30: 0.3, 40: 0.1}
    si.rework_durations_phase = {30: (0.1, 0.2, 0.3, 0.4, 0.5)}
    si.rework_gaps_phase = {30: (0.05,) * 5}
    return si


@pytest.mark.parametrize("rule", ["FIFO", "SPT", "OLDEST_FIRST"])
def test_heap_loop_matches_simpy_with_calendar_rework_and_delays(rule):
    si = shop_input()
    sc = Scenario(priority_rule=rule, horizon_days=28, seed=3, capacity_overrides=((30, "servers", 1),))
    heap, ref = run_once(si, sc, backend="heap"), run_once(si, sc, backend="simpy")
    assert heap["finish_days"] == ref["finish_days"] and heap["kpis"] == ref["kpis"]
    assert heap["steps"] > sum(len(o.route) for o in si.orders) * 0.5


def test_stations_start_only_inside_the_calendar_and_work_continues_outside():
    from whatif.engine import WeekCalendar

    weekdays = tuple(d < 5 and 6 <= h < 22 for d in range(7) for h in range(24))
    cal = WeekCalendar(weekdays, 4 * 24 + 21.0)  # t = 0 is Friday 21:00
    assert cal.until_open(0.0) == 0.0  # open until 22:00
    assert cal.until_open(1.5 / 24) == pytest.approx((2 * 24 + 8 - 0.5) / 24)  # Fri 22:30 -> Mon 06:00
    assert cal.after_open(0.0, 2 / 24) == pytest.approx((1 + 2 * 24 + 8 + 1) / 24)  # 1 h Friday, 1 h Monday
    assert cal.open_between(0.0, 3.0) == pytest.approx(16 / 24)  # Fri 21:00 -> Mon 21:00: 1 h Friday, 15 h Monday
    # an order ready on Friday at 22:30 waits for Monday 06:00; its 3-day touch time runs through the night
    o = SimOrder(key="wip:1", order_id=1, product_id=None, family="X", route=(1,), waiting_elapsed=0.0)
    si = SimInput(phases={1: "a"}, capacity={1: 1}, durations_family_phase={}, durations_phase={1: (3.0,)},
                  durations_global=(3.0,), orders=[o], default_calendar=weekdays,
                  calendar_origin_hour=4 * 24 + 22.5)
    for backend in ("heap", "simpy"):
        r = run_once(si, Scenario(horizon_days=30, arrivals=False), backend=backend)
        assert r["finish_days"]["wip:1"] == pytest.approx((2 * 24 + 7.5) / 24 + 3.0)
        assert r["kpis"]["mean_queue_wait_days"]["1"] == pytest.approx((2 * 24 + 7.5) / 24)


def test_rework_adds_a_second_pass_with_its_probability():
    orders = [SimOrder(key=f"wip:{k:03d}", order_id=k, product_id=None, family="X", route=(1, 2)) for k in range(400)]
    si = SimInput(phases={1: "a", 2: "b"}, capacity={1: 1000, 2: 1000}, durations_family_phase={},
                  durations_phase={1: (1.0,), 2: (1.0,)}, durations_global=(1.0,), orders=orders,
                  rework_probability={1: 0.25}, rework_durations_phase={1: (0.5,) * 5})
    r = run_once(si, Scenario(horizon_days=30, arrivals=False, seed=4))
    finishes = sorted(r["finish_days"].values())
    reworked = sum(1 for t in finishes if t == 2.5)
    assert set(finishes) == {2.0, 2.5}
    assert 0.18 < reworked / 400 < 0.32  # a quarter of the orders pass phase 1 twice
    assert r["steps"] == 800 + reworked


def test_a_station_hold_limits_the_start_rate_and_the_order_leaves_at_its_touch_time():
    # 30 orders wait for one station; touch time 0.1 day, station cycle 10 x that: one start a day
    orders = [SimOrder(key=f"wip:{k:03d}", order_id=k, product_id=None, family="X", route=(1,)) for k in range(30)]
    si = SimInput(phases={1: "gate"}, capacity={1: 1}, durations_family_phase={}, durations_phase={1: (0.1,)},
                  durations_global=(0.1,), orders=orders, station_hold={1: 10.0})
    plain = run_once(SimInput(**{**si.__dict__, "station_hold": {}}), Scenario(horizon_days=10, arrivals=False))
    assert plain["kpis"]["orders_finished"] == 30  # without the hold: 30 x 0.1 day = 3 days
    for backend in ("heap", "simpy"):
        r = run_once(si, Scenario(horizon_days=10, arrivals=False), backend=backend)
        finishes = sorted(r["finish_days"].values())
        assert len(finishes) == 10  # starts at 0, 1, ..., 9
        assert finishes == pytest.approx([k + 0.1 for k in range(10)])
        assert r["kpis"]["utilisation"]["1"] == pytest.approx(1.0)
    two = run_once(si, Scenario(horizon_days=10, arrivals=False, capacity_overrides=((1, "servers", 2),)))
    assert two["kpis"]["orders_finished"] == 20  # a station more: one more cycle at a time


def test_delays_grow_with_the_shop_load_by_the_measured_elasticity():
    # one order waits a 1-day delay; the shop started 2 orders a day in the last 14 days, the delays were measured
    # at 1 a day: with elasticity 1 the delay doubles, with 0 it is the sample
    o = SimOrder(key="wip:1", order_id=1, product_id=None, family="X", route=(1,), waiting_elapsed=None)
    base = dict(phases={1: "a"}, capacity={1: 1}, durations_family_phase={}, durations_phase={1: (0.1,)},
                durations_global=(0.1,), orders=[o], gaps_phase={1: (1.0,) * 10},
                recent_starts=tuple(0.25 - k * 0.5 for k in range(1, 29)), delay_reference_load=1.0)
    for b, delay in ((0.0, 1.0), (1.0, 2.0), (0.5, 2 ** 0.5)):
        for backend in ("heap", "simpy"):
            r = run_once(SimInput(**base, delay_load_elasticity=b), Scenario(horizon_days=10, arrivals=False),
                         backend=backend)
            assert r["finish_days"]["wip:1"] == pytest.approx(delay + 0.1)
    # a phase's own elasticity comes before the pooled one
    own = SimInput(**base, delay_load_elasticity=1.0, delay_load_elasticity_by_phase={1: 0.0})
    assert run_once(own, Scenario(horizon_days=10, arrivals=False))["finish_days"]["wip:1"] == pytest.approx(1.1)


@pytest.mark.parametrize("rule", ["FIFO", "SPT"])
def test_heap_loop_matches_simpy_with_station_holds_and_load_dependent_delays(rule):
    si = shop_input()
    si.station_hold = {20: 2.5, 30: 1.4}
    si.delay_load_elasticity = 0.8
    si.delay_load_elasticity_by_phase = {30: 1.5, 40: 0.0}
    si.delay_reference_load = 6.0
    si.recent_starts = tuple(-k * 0.2 for k in range(1, 60))
    sc = Scenario(priority_rule=rule, horizon_days=28, seed=5)
    heap, ref = run_once(si, sc, backend="heap"), run_once(si, sc, backend="simpy")
    assert heap["finish_days"] == ref["finish_days"] and heap["kpis"] == ref["kpis"]
    assert heap["finish_days"] != run_once(shop_input(), sc)["finish_days"]
