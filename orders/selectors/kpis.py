"""Flow KPIs (lead time, throughput, WIP, on-time and rework rates) by window, product, phase and employee."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from orders.choices import OrderState
from orders.maths import mean
from orders.models import (
    Employee,
    Product,
)
from orders.selectors.common import DAY, TREND_WEEKS, _fetch, _product_payload, _r, phase_names
from orders.selectors.state import active_orders_at, lead_time_thresholds, open_orders_at, state_summary
from prodplan.cache import versioned_cache
from prodplan.gates import (
    MATCH_RATE_RULE,
    OBSERVED,
    THEORETICAL,
    figure,
    not_supported,
    ratio,
    reference_match_sql,
)
from prodplan.stats import percentile


def _finished_rows(*, start: datetime, end: datetime, as_of: datetime) -> list[dict]:
    """Orders finished in [start, min(end, as_of)] with lead time, the p75 known at as_of, and rework flag (one query)."""
    thresholds = lead_time_thresholds(as_of=as_of)
    rows = _fetch(
        """
        WITH finished AS MATERIALIZED (
            SELECT o.id, o.product_id, o.lead_time_days FROM orders_manufacturingorder o
            WHERE o.finished_at >= %(start)s AND o.finished_at < %(end)s AND o.finished_at <= %(as_of)s
        )
        SELECT f.id, f.product_id, f.lead_time_days, EXISTS (
            -- a rework pass started by as_of (orders_op_order_seq_idx in each partition)
            SELECT 1 FROM orders_orderphase p WHERE p.order_id = f.id AND p.is_rework AND p.started_at <= %(as_of)s
        ) AS reworked
        FROM finished f
        """,
        {"start": start, "end": end, "as_of": as_of},
    )
    glob = thresholds["global"]
    for r in rows:
        r["p75"] = thresholds["product"].get(r["product_id"], glob)["p75"]
    return rows


def _wip_rows(*, t: datetime) -> list[dict]:
    """The active orders at t (the order state: stalled and abandoned orders are not WIP)."""
    return active_orders_at(as_of=t)


def _kpi_block(finished: list[dict], wip: list[dict], weeks: float, stalled: int) -> dict:
    valid = [r["lead_time_days"] for r in finished if r["lead_time_days"] is not None and r["lead_time_days"] >= 0]
    judged = [r for r in finished if r["p75"] is not None and r["lead_time_days"] is not None and r["lead_time_days"] >= 0]
    ages = [float(r["age_days"]) for r in wip if r["age_days"] is not None]
    n = len(finished)
    return {
        "finished_orders": n,
        "lead_time_days": figure({"p50": _r(percentile(valid, 0.5)), "p90": _r(percentile(valid, 0.9)), "mean": _r(mean(valid))},
                                 basis=OBSERVED, coverage=ratio(len(valid), n), n=len(valid)),
        "throughput_per_week": figure(_r(n / weeks) if weeks else None, basis=OBSERVED, coverage=1.0),
        "wip": figure({"count": len(wip), "age_days_p50": _r(percentile(ages, 0.5)), "age_days_p90": _r(percentile(ages, 0.9)),
                       "age_days_mean": _r(mean(ages))}, basis=OBSERVED, coverage=1.0, stalled_orders_excluded=stalled,
                      note="active orders (the order state): stalled and abandoned orders are not WIP"),
        "on_time_rate": figure(_r(ratio(sum(1 for r in judged if r["lead_time_days"] <= r["p75"]), len(judged))),
                               basis=THEORETICAL, coverage=ratio(len(judged), n),
                               note="against the product's p75 lead time of the orders finished by as_of (no due date in the data)"),
        "rework_rate": figure(_r(ratio(sum(1 for r in finished if r["reworked"]), n)), basis=OBSERVED, coverage=1.0 if n else None,
                              note="share of finished orders with at least one rework pass"),
    }


def kpi_range(*, date_from, date_to, as_of: datetime) -> tuple[datetime, datetime, float]:
    """[start, end) of the KPI window from dates (inclusive), default the 12 weeks up to as_of; its length in weeks."""
    from django.utils import timezone

    end_date = date_to or as_of.astimezone(timezone.get_current_timezone()).date()
    start_date = date_from or end_date - timedelta(days=7 * TREND_WEEKS - 1)
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(start_date, datetime.min.time()), tz)
    end = timezone.make_aware(datetime.combine(end_date + timedelta(days=1), datetime.min.time()), tz)
    return start, end, (end - start).total_seconds() / (7 * DAY)


@versioned_cache("orders.kpi_overview", warm=True)
def kpi_overview(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    """Lead time, throughput, WIP (at the window's end, capped at as_of), on-time and rework rates."""
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    stalled = state_summary(as_of=wip_at)["states"][OrderState.STALLED]
    return {"from": start, "to": end, "wip_at": wip_at,
            **_kpi_block(_finished_rows(start=start, end=end, as_of=as_of), _wip_rows(t=wip_at), weeks, stalled)}


@versioned_cache("orders.kpi_by_product")
def kpi_by_product(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    finished = defaultdict(list)
    wip = defaultdict(list)
    for r in _finished_rows(start=start, end=end, as_of=as_of):
        finished[r["product_id"]].append(r)
    for r in _wip_rows(t=wip_at):
        wip[r["product_id"]].append(r)
    stalled = Counter(r["product_id"] for r in open_orders_at(as_of=wip_at) if r["state"] == OrderState.STALLED)
    products = {p["id"]: p for p in Product.objects.filter(id__in=[k for k in set(finished) | set(wip) if k is not None])
                .values("id", "name", "family")}
    rows = []
    for pid in sorted(set(finished) | set(wip), key=lambda k: (k is None, k or 0)):
        prod = products.get(pid)
        rows.append({"product": _product_payload(pid, prod and prod["name"], prod and prod["family"]),
                     **_kpi_block(finished.get(pid, []), wip.get(pid, []), weeks, stalled.get(pid, 0))})
    rows.sort(key=lambda r: -r["finished_orders"])
    return {"from": start, "to": end, "wip_at": wip_at, "products": rows}


@versioned_cache("orders.kpi_by_phase")
def kpi_by_phase(*, date_from=None, date_to=None, as_of: datetime) -> dict:
    """Per phase: duration (start → end) p50/p90/mean of phases ended in the window, throughput, WIP, rework share."""
    start, end, weeks = kpi_range(date_from=date_from, date_to=date_to, as_of=as_of)
    wip_at = min(end, as_of)

    names = phase_names()
    # Partition pruning on event_time (= end for ended phases), then the aggregate per phase.
    stats = {r["phase_id"]: r for r in _fetch(
        """
        SELECT phase_id, count(*) AS n, count(duration_seconds) AS timed,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) / 3600.0 AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_seconds) / 3600.0 AS p90,
               avg(duration_seconds) / 3600.0 AS mean,
               count(*) FILTER (WHERE is_rework) AS reworks
        FROM orders_orderphase
        WHERE ended_at >= %(start)s AND ended_at < %(end)s AND event_time >= %(start)s AND event_time < %(end)s
          AND ended_at <= %(as_of)s AND started_at <= %(as_of)s AND phase_id IS NOT NULL
        GROUP BY phase_id
        """, {"start": start, "end": end, "as_of": as_of})}
    per_phase: dict[int, list] = defaultdict(list)
    for r in _wip_rows(t=wip_at):
        if r["phase_id"] is not None and r["since"] is not None:
            per_phase[r["phase_id"]].append((wip_at - r["since"]).total_seconds() / DAY)
    rows = []
    for pid in sorted(set(stats) | set(per_phase)):
        s = stats.get(pid, {"n": 0, "timed": 0, "p50": None, "p90": None, "mean": None, "reworks": 0})
        ages = per_phase.get(pid, [])
        rows.append({
            "phase": {"id": pid, "name": names.get(pid)},
            "executions": s["n"],
            "duration_hours": figure({"p50": _r(s["p50"]), "p90": _r(s["p90"]), "mean": _r(s["mean"])},
                                     basis=OBSERVED, coverage=ratio(s["timed"], s["n"]), n=s["timed"]),
            "throughput_per_week": figure(_r(s["n"] / weeks), basis=OBSERVED, coverage=1.0),
            "wip": figure({"count": len(ages), "in_state_days_p50": _r(percentile(ages, 0.5)),
                           "in_state_days_p90": _r(percentile(ages, 0.9))}, basis=OBSERVED, coverage=1.0),
            "on_time_rate": figure(None, basis=THEORETICAL, coverage=0.0,
                                   note="no per-phase due date or standard duration in the data"),
            "rework_rate": figure(_r(ratio(s["reworks"], s["n"])), basis=OBSERVED, coverage=1.0 if s["n"] else None,
                                  note="share of the phase's executions that were rework passes"),
        })
    rows.sort(key=lambda r: -r["executions"])
    return {"from": start, "to": end, "wip_at": wip_at, "phases": rows}


@versioned_cache("orders.employee_match_rate")
def employee_match_rate() -> dict:
    """The assignment → order-phase match rate (prodplan.gates.MATCH_RATE_RULE), the one every gate and page uses."""
    with connection.cursor() as cursor:
        cursor.execute(reference_match_sql(table="orders_phaseassignment", column="order_phase_id",
                                           known_values_sql="SELECT DISTINCT id AS value FROM orders_orderphase"))
        distinct, matched, orphan_rows, _, rows = cursor.fetchone()
    rows, orphan_rows = int(rows), int(orphan_rows)
    return {"values": distinct, "matched_values": matched, "rows": rows, "matched_rows": rows - orphan_rows,
            "rate": ratio(matched, distinct), "definition": MATCH_RATE_RULE,
            # the former names, kept for the API's clients
            "assignments": rows, "matched": rows - orphan_rows}


@versioned_cache("orders.kpi_by_employee")
def _employee_rows() -> list[dict]:
    """Phases worked, led and their elapsed hours per employee id (names apart: they never enter the cache)."""
    return _fetch(
        """
        SELECT a.employee_id, count(*) AS phases_worked, count(*) FILTER (WHERE a.is_leader) AS phases_led,
               coalesce(sum(p.duration_seconds), 0) / 3600.0 AS elapsed_hours, count(p.duration_seconds) AS timed
        FROM orders_phaseassignment a
        JOIN (SELECT DISTINCT ON (id) id, duration_seconds FROM orders_orderphase ORDER BY id) p
          ON p.id = a.order_phase_id
        GROUP BY a.employee_id
        ORDER BY a.employee_id
        """
    )


def kpi_by_employee(*, include_names: bool) -> dict:
    """Per-employee phases worked and elapsed hours of those phases — only when assignments match order phases.

    NOT_SUPPORTED_BY_DATA (HTTP 200) while the measured match rate is under settings.EMPLOYEE_MATCH_RATE_GATE."""
    gate = settings.EMPLOYEE_MATCH_RATE_GATE
    match = employee_match_rate()
    rate = match["rate"] or 0.0
    if rate < gate:
        return not_supported(
            feature="kpis.by_employee",
            reason=(f"Only {rate:.1%} of the order-phase ids named by employee assignments exist "
                    f"(gate {gate:.0%}): per-employee figures would describe a biased minority."),
            measured=rate, threshold=gate, assignments=match["assignments"], matched=match["matched"],
            match_rate_definition=MATCH_RATE_RULE, values=match["values"], matched_values=match["matched_values"],
        )

    rows = _employee_rows()
    names = dict(Employee.objects.values_list("id", "name")) if include_names else {}
    return {
        "status": "OK",
        "match_rate": figure(_r(rate), basis=OBSERVED, coverage=1.0, threshold=gate, definition=MATCH_RATE_RULE,
                             values=match["values"], matched_values=match["matched_values"], rows=match["rows"],
                             matched_rows=match["matched_rows"]),
        "employees": [
            {
                "employee_id": r["employee_id"],
                **({"name": names.get(r["employee_id"])} if include_names else {}),
                "phases_worked": r["phases_worked"],
                "phases_led": r["phases_led"],
                "elapsed_hours": figure(_r(float(r["elapsed_hours"]), 3), basis=OBSERVED,
                                        coverage=ratio(r["timed"], r["phases_worked"]),
                                        note="elapsed time of phases worked as a team member, not labour hours"),
            }
            for r in rows
        ],
    }
