"""Sanity of the what-if on a demo-like factory (the demo generator at a small scale): a station more at the
measured bottleneck shortens lead time, at a busy non-bottleneck it changes little; SPT lowers the mean flow
time against FIFO; faster work never leaves more orders unfinished or stalled."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tests.conftest import DOMAIN_TABLES, FORGET_AS_OF, clear_caches
from whatif import engine

pytestmark = pytest.mark.django_db

SANITY_SCALE = 0.03  # ~800 orders over four years, ~18 in the shop at the snapshot
SANITY_AS_OF = "2025-05-05"  # spring: the gate's backlog is building (the demo's season)
SEEDS = (0, 1, 2)
HORIZON_DAYS = 56


@pytest.fixture(scope="module")
def demo(tmp_path_factory, django_db_setup, django_db_blocker) -> dict:
    """The demo workbook ingested inside a transaction that is rolled back; the what-if input gathered at its
    as-of and the phases ranked by the order-state model's measured queue time (plain data: they outlive the
    rollback, and the session's committed workbook is untouched)."""
    from django.core.management import call_command

    from ingestion.services import ingest_workbook
    from orders.selectors import bottleneck_table
    from whatif.selectors import gather_sim_input

    path = tmp_path_factory.mktemp("sanity") / "demo.xlsx"
    call_command("make_demo_workbook", str(path), scale=SANITY_SCALE, seed=42, as_of=SANITY_AS_OF)
    with django_db_blocker.unblock(), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_reject, ingestion_sheetrun, "
                           "ingestion_dataqualityissue, ingestion_ingestionrun CASCADE")
            cursor.execute(FORGET_AS_OF)
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        clear_caches()
        run = ingest_workbook(path=str(path), profile=False, warm_caches=False)
        assert run.status == "succeeded", run.error
        sim_input = gather_sim_input(as_of=run.as_of)
        ranked = [r["phase_id"] for r in bottleneck_table(as_of=run.as_of) if r["enough_volume"]]
        transaction.set_rollback(True)
    clear_caches()
    return {"input": sim_input, "ranked": ranked}


def _runs(sim_input, **scenario) -> list[dict]:
    return [engine.run_once(sim_input, engine.Scenario(horizon_days=HORIZON_DAYS, seed=s, **scenario))["kpis"]
            for s in SEEDS]


def _mean(sim_input, kpi: str, **scenario) -> float:
    """A KPI averaged over a few seeds (common random numbers between scenarios of one seed)."""
    values = [k[kpi] for k in _runs(sim_input, **scenario)]
    return sum(values) / len(values)


def _one_more_station(sim_input, phase: int) -> float:
    """Relative change of the mean lead time of the orders finished in the horizon with one station more."""
    base = _mean(sim_input, "mean_lead_time_finished_days")
    more = _mean(sim_input, "mean_lead_time_finished_days",
                 capacity_overrides=((phase, "servers", sim_input.capacity.get(phase, 1) + 1),))
    return more / base - 1


def test_a_station_more_at_the_measured_bottleneck_shortens_lead_time_and_elsewhere_changes_little(demo):
    sim_input, ranked = demo["input"], demo["ranked"]
    bottleneck, busy_other = ranked[0], ranked[1]
    assert len(sim_input.orders) >= 10
    # the measured bottleneck (orders.selectors: most queue time) is where the simulated stations are busiest
    baseline = _runs(sim_input)[0]
    assert baseline["bottleneck_phase_id"] == bottleneck
    at_bottleneck = _one_more_station(sim_input, bottleneck)
    elsewhere = _one_more_station(sim_input, busy_other)
    assert at_bottleneck < -0.02  # lead time falls by more than 2%
    assert abs(elsewhere) < 0.01 and abs(elsewhere) < abs(at_bottleneck) / 4


def test_spt_lowers_mean_flow_time_against_fifo(demo):
    sim_input = demo["input"]
    fifo = _mean(sim_input, "mean_flow_time_days")
    spt = _mean(sim_input, "mean_flow_time_days", priority_rule="SPT")
    assert spt < fifo
    # and the queue it acts on is real: orders wait for stations in the baseline
    assert _mean(sim_input, "mean_queue_wait_days_overall") > 0


def test_faster_work_never_leaves_more_orders_unfinished_or_stalled(demo):
    sim_input = demo["input"]
    for base, fast in zip(_runs(sim_input), _runs(sim_input, coef_overrides=((None, None, None, 0.5),)), strict=True):
        assert fast["orders_unfinished"] <= base["orders_unfinished"]
        assert fast["orders_stalled"] == base["orders_stalled"]
        assert fast["orders_finished"] >= base["orders_finished"]
        assert fast["mean_lead_time_finished_days"] < base["mean_lead_time_finished_days"]
    assert sum(k["orders_unfinished"] for k in _runs(sim_input, coef_overrides=((None, None, None, 0.5),))) < \
        sum(k["orders_unfinished"] for k in _runs(sim_input))
