"""Bottlenecks from the measured flow: the 4-week queue forecast, its ranking and its backtest."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from orders.choices import OrderState
from orders.models import (
    RouteStep,
)
from orders.selectors.common import DAY, TREND_WEEKS, _fetch, _r, phase_names
from orders.selectors.state import (
    ACTIVE_STATES,
    active_orders_at,
    phases_since,
    stall_thresholds,
    state_summary,
)
from prodplan.asof import data_as_of
from prodplan.cache import versioned_cache
from prodplan.gates import (
    OBSERVED,
    THEORETICAL,
    figure,
    ratio,
)

BOTTLENECK_WINDOW_DAYS = 14


BOTTLENECK_MIN_QUEUE_EVENTS = 5


BOTTLENECK_BACKTEST_HORIZON_DAYS = 28


BOTTLENECK_WAIT_DAYS = 28  # the mean wait per visit is measured over this many days


BOTTLENECK_ROUTE_STEPS = 2  # how many next steps of an order's route count as work coming to a phase


BOTTLENECK_RECENT_WEIGHT = 1.0  # the weight of the recent queue (it stands for the work further away)


BOTTLENECK_RULE = (
    "Phases ranked by the queue forecast for the next {horizon} days, the figure the backtest scores: forecast "
    "hours = expected visits x mean wait + {recent_weight} x the queue measured in the last {window} days. "
    "Expected visits: the active orders waiting for the phase now, plus those that have it among the next {steps} "
    "steps of their product's standard route (else of the phases that usually followed) after the phase they wait "
    "for or work at. Mean wait: the waits measured before the phase's starts in the {wait_days} days before as_of "
    "(a wait runs from the previous phase's end, or the order's creation for its first phase, to the phase's "
    "start). Recent queue: the hours orders spent waiting for the phase inside the {window} days before as_of "
    "(orders still waiting at as_of count up to as_of); it stands for the work further upstream and not yet "
    "created. A phase needs at least {min_n} waits in the window (measured or still running) to rank among the "
    "phases that have them (one order cannot make a phase #1). Shown beside: utilisation (busy time over the "
    "window times the most orders seen in the phase at once), work waiting now, throughput."
)


def bottleneck_rule() -> str:
    """BOTTLENECK_RULE with its parameters."""
    return BOTTLENECK_RULE.format(
        horizon=BOTTLENECK_BACKTEST_HORIZON_DAYS, recent_weight=BOTTLENECK_RECENT_WEIGHT, window=BOTTLENECK_WINDOW_DAYS,
        steps=BOTTLENECK_ROUTE_STEPS, wait_days=BOTTLENECK_WAIT_DAYS, min_n=BOTTLENECK_MIN_QUEUE_EVENTS)


# Per phase, over the window (t - days, t]: the waits measured before the phases started in it (previous end
# by start order; the order's creation for the first phase of an order created in the lookback), the phases
# ended in it, and the busy time clipped to the window; over (t - wait_days, t] the waits again (the mean wait
# per visit of the forecast). Partitions are pruned on event_time: a phase's
# event_time is its end (else its start), so the lookback (window + LOOKBACK) covers the previous phases.
_FLOW_SQL = """
WITH snaps AS (SELECT unnest(%(snaps)s::timestamptz[]) AS t),
r AS (
    SELECT s.t, p.order_id, p.phase_id, p.started_at,
           CASE WHEN p.ended_at <= s.t THEN p.ended_at END AS ended_at,
           CASE WHEN row_number() OVER w = 1
                THEN CASE WHEN o.created_at > s.t - make_interval(days => %(lookback)s) THEN o.created_at END
                ELSE lag(CASE WHEN p.ended_at <= s.t THEN p.ended_at END) OVER w END AS previous_end
    FROM snaps s
    JOIN {phases} p
      ON (p.event_time > s.t - make_interval(days => %(lookback)s) OR p.is_open) AND p.started_at <= s.t
    JOIN orders_manufacturingorder o ON o.id = p.order_id
    WHERE p.phase_id IS NOT NULL
    WINDOW w AS (PARTITION BY s.t, p.order_id ORDER BY p.started_at, p.sequence, p.id)
)
SELECT t, phase_id,
       count(*) FILTER (WHERE started_at > t - make_interval(days => %(days)s) AND previous_end <= started_at) AS queue_n,
       coalesce(sum(extract(epoch FROM started_at - previous_end))
           FILTER (WHERE started_at > t - make_interval(days => %(days)s) AND previous_end <= started_at), 0) AS queue_seconds,
       count(*) FILTER (WHERE ended_at > t - make_interval(days => %(days)s)) AS done,
       coalesce(sum(extract(epoch FROM least(coalesce(ended_at, t), t)
                                   - greatest(started_at, t - make_interval(days => %(days)s))))
           FILTER (WHERE coalesce(ended_at, t) > t - make_interval(days => %(days)s)), 0) AS busy_seconds,
       coalesce(sum(extract(epoch FROM started_at - greatest(previous_end, t - make_interval(days => %(days)s))))
           FILTER (WHERE started_at > t - make_interval(days => %(days)s) AND previous_end <= started_at), 0)
           AS queue_overlap_seconds,
       count(*) FILTER (WHERE started_at > t - make_interval(days => %(wait_days)s) AND previous_end <= started_at)
           AS wait_n,
       coalesce(sum(extract(epoch FROM started_at - previous_end))
           FILTER (WHERE started_at > t - make_interval(days => %(wait_days)s) AND previous_end <= started_at), 0)
           AS wait_seconds,
       max(started_at) AS last_start
FROM r GROUP BY t, phase_id
"""


FLOW_LOOKBACK_DAYS = 120


def measured_flow(*, snapshots: list[datetime], days: int = BOTTLENECK_WINDOW_DAYS,
                  wait_days: int = BOTTLENECK_WAIT_DAYS) -> dict[datetime, dict[int, dict]]:
    """Per snapshot t and phase: waits measured before the phase (n, seconds), phases ended, busy seconds over (t - days, t];
    the waits over (t - wait_days, t] (wait_n, wait_seconds).

    One query for all snapshots; only rows known at t (started by t; ends after t are unknown then)."""
    out: dict[datetime, dict[int, dict]] = {t: {} for t in snapshots}
    lookback = max(days, wait_days) + FLOW_LOOKBACK_DAYS
    sql = _FLOW_SQL.format(phases=phases_since("%(earliest)s"))
    rows = _fetch(sql, {"snaps": list(snapshots), "days": days, "wait_days": wait_days, "lookback": lookback,
                        "earliest": min(snapshots) - timedelta(days=lookback)}) if snapshots else []
    for row in rows:
        out.setdefault(row["t"], {})[row["phase_id"]] = row
    return out


def _peak_concurrency(*, as_of: datetime, days: int) -> dict[int, int]:
    """The most order phases of each phase in progress at once over the window (observed capacity)."""
    rows = _fetch(
        """
        WITH spans AS (
            SELECT phase_id, greatest(started_at, %(start)s) AS s, least(coalesce(ended_at, %(as_of)s), %(as_of)s) AS e
            FROM {phases} p
            WHERE started_at <= %(as_of)s AND phase_id IS NOT NULL
              AND coalesce(ended_at, %(as_of)s) > %(start)s
        ), edges AS (
            SELECT phase_id, s AS at, 1 AS delta FROM spans UNION ALL SELECT phase_id, e, -1 FROM spans
        )
        SELECT phase_id, max(running) AS peak FROM (
            SELECT phase_id, sum(delta) OVER (PARTITION BY phase_id ORDER BY at, delta ROWS UNBOUNDED PRECEDING) AS running
            FROM edges) x
        GROUP BY phase_id
        """.format(phases=phases_since("%(start)s")),
        {"as_of": as_of, "start": as_of - timedelta(days=days)},
    )
    return {r["phase_id"]: int(r["peak"]) for r in rows}


@versioned_cache("orders.standard_routes", in_process=True)
def standard_routes() -> dict[int, list[int]]:
    """Each catalogued product's standard route: its phase ids in step order (one query; cached per data version)."""
    routes: dict[int, list[int]] = defaultdict(list)
    for product_id, phase_id in RouteStep.objects.order_by("product_id", "sequence", "phase_id").values_list(
            "product_id", "phase_id"):
        routes[product_id].append(phase_id)
    return dict(routes)


def _next_steps(product_id, phase_id: int, routes: dict[int, list[int]], successors: dict, k: int) -> tuple[list[int], str]:
    """The k phases after phase_id: on the product's standard route when the phase is on it, else the chain of the
    phases that usually followed (stall_thresholds' next_phase); with the basis used."""
    route = routes.get(product_id)
    if route and phase_id in route:
        i = route.index(phase_id)
        return route[i + 1:i + 1 + k], "standard_route"
    steps: list[int] = []
    phase = phase_id
    while len(steps) < k:
        phase = successors.get(str(phase))
        if phase is None or phase in steps or phase == phase_id:
            break
        steps.append(int(phase))
    return steps, "usual_next_phase" if steps else "none"


def expected_visits(*, active: list[dict], routes: dict[int, list[int]] | None,
                    successors: dict | None, steps: int = BOTTLENECK_ROUTE_STEPS) -> tuple[dict, Counter]:
    """Per phase, the active orders that will visit it soon: waiting for it now, or having it among the next `steps`
    steps after the phase they wait for or work at (BOTTLENECK_RULE); and how many orders' next steps came from
    the standard route, the usual next phases, or nowhere."""
    visits: dict[int, Counter] = defaultdict(Counter)
    basis: Counter = Counter()
    for r in active:
        phase_id = r["phase_id"]
        if phase_id is None:
            continue
        if r["state"] != OrderState.IN_PROGRESS:
            visits[phase_id]["waiting"] += 1
        following, how = _next_steps(r.get("product_id"), phase_id, routes or {}, successors or {}, steps)
        basis[how] += 1
        for q in following:
            visits[q]["upstream"] += 1
    return visits, basis


def rank_bottlenecks(*, flow: dict[int, dict], active: list[dict], as_of: datetime,
                     peaks: dict[int, int] | None = None, days: int = BOTTLENECK_WINDOW_DAYS,
                     routes: dict[int, list[int]] | None = None, successors: dict | None = None) -> list[dict]:
    """Phases ranked by the queue forecast for the next 4 weeks at as_of (BOTTLENECK_RULE); flow from measured_flow,
    active orders from active_orders_at, routes from standard_routes, successors from stall_thresholds'
    next_phase (without them only the orders waiting now count as visits). Pure: the backtest ranks past dates
    with the same code. queue_score_hours is the queue measured over the window (the backtest's truth)."""
    window_start = as_of - timedelta(days=days)
    visits, _ = expected_visits(active=active, routes=routes, successors=successors)
    waiting: dict = defaultdict(list)
    in_progress: Counter = Counter()
    for r in active:
        if r["phase_id"] is None:
            continue
        if r["state"] == OrderState.IN_PROGRESS:
            in_progress[r["phase_id"]] += 1
        elif r["since"] is not None:  # waiting or not started: its wait so far, the part inside the window
            waiting[r["phase_id"]].append((as_of - max(r["since"], window_start)).total_seconds())
    table = []
    for phase_id in set(flow) | set(waiting) | set(in_progress) | set(visits):
        f = flow.get(phase_id, {})
        queue_n = int(f.get("queue_n") or 0) + len(waiting.get(phase_id, []))
        measured = float(f.get("queue_overlap_seconds") or 0.0)
        waiting_now = sum(waiting.get(phase_id, []))
        peak = (peaks or {}).get(phase_id)
        busy = float(f.get("busy_seconds") or 0.0)
        wait_n = int(f.get("wait_n") or 0)
        mean_wait = float(f["wait_seconds"]) / wait_n / 3600.0 if wait_n else None
        coming = visits.get(phase_id, Counter())
        n_visits = coming["waiting"] + coming["upstream"]
        from_visits = n_visits * (mean_wait or 0.0)
        from_recent = BOTTLENECK_RECENT_WEIGHT * (measured + waiting_now) / 3600.0
        table.append({
            "phase_id": phase_id,
            "queue_events": queue_n,
            "measured_queue_seconds": measured,
            "waiting_orders": len(waiting.get(phase_id, [])),
            "waiting_seconds": waiting_now,
            "queue_score_hours": (measured + waiting_now) / 3600.0,
            "mean_wait_hours": float(f["queue_seconds"]) / f["queue_n"] / 3600.0 if f.get("queue_n") else None,
            "in_progress": in_progress.get(phase_id, 0),
            "throughput_per_day": int(f.get("done") or 0) / days,
            "utilisation": busy / (days * DAY * peak) if peak else None,
            "peak_concurrency": peak,
            "enough_volume": queue_n >= BOTTLENECK_MIN_QUEUE_EVENTS,
            "visits_waiting": coming["waiting"],
            "visits_upstream": coming["upstream"],
            "forecast_mean_wait_hours": mean_wait,
            "forecast_waits_measured": wait_n,
            "forecast_from_visits_hours": from_visits,
            "forecast_from_recent_hours": from_recent,
            "forecast_hours": from_visits + from_recent,
        })
    table.sort(key=lambda r: (not r["enough_volume"], -r["forecast_hours"], r["phase_id"]))
    for rank, row in enumerate(table, start=1):
        row["rank"] = rank
    return table


@versioned_cache("orders.bottleneck_table")
def bottleneck_table(*, as_of: datetime) -> list[dict]:
    """Phases ranked by the queue forecast at as_of (numbers only; cached)."""
    flow = measured_flow(snapshots=[as_of])[as_of]
    return rank_bottlenecks(flow=flow, active=active_orders_at(as_of=as_of), as_of=as_of,
                            peaks=_peak_concurrency(as_of=as_of, days=BOTTLENECK_WINDOW_DAYS),
                            routes=standard_routes(), successors=stall_thresholds(as_of=as_of)["next_phase"])


def bottleneck_backtest(*, start: datetime, weeks: int, horizon_days: int = BOTTLENECK_BACKTEST_HORIZON_DAYS) -> list[dict]:
    """Rank the bottlenecks at start + k weeks (k < weeks) with only what was known then, and find the phase with
    the most queue time measured over the next horizon_days (waits of the phases started in it): one row per week.

    Weeks whose horizon passes the data's last event cannot be scored (actual None). Two flow queries in all."""
    names = phase_names()
    dates = [start + timedelta(days=7 * k) for k in range(weeks)]
    flows = measured_flow(snapshots=dates)
    ahead = measured_flow(snapshots=[t + timedelta(days=horizon_days) for t in dates], days=horizon_days)
    naive_flows = measured_flow(snapshots=dates, days=horizon_days)
    last = data_as_of()
    routes = standard_routes()
    out = []
    for t in dates:
        ranked = rank_bottlenecks(flow=flows.get(t, {}), active=active_orders_at(as_of=t), as_of=t, routes=routes,
                                  successors=stall_thresholds(as_of=t)["next_phase"])
        top = ranked[0]["phase_id"] if ranked and ranked[0]["forecast_hours"] > 0 else None
        end = t + timedelta(days=horizon_days)
        # The truth: the queue measured over the next horizon_days, by the same measure, from the data at t + horizon.
        measured = sorted(rank_bottlenecks(flow=ahead.get(end, {}), active=active_orders_at(as_of=end), as_of=end,
                                           days=horizon_days), key=lambda r: (-r["queue_score_hours"], r["phase_id"]))
        scorable = (last is None or end <= last) and measured and measured[0]["queue_score_hours"] > 0
        actual = measured[0]["phase_id"] if scorable else None
        # Naive forecast: the phase whose phases started in the last horizon_days waited longest in total.
        window = naive_flows.get(t, {})
        naive = max(window, key=lambda p: (float(window[p]["queue_seconds"]), -p)) if window else None
        out.append({
            "date": t, "predicted": top, "predicted_name": names.get(top), "actual": actual,
            "actual_name": names.get(actual), "hit": None if actual is None or top is None else top == actual,
            "naive_last_window": naive, "naive_hit": None if actual is None or naive is None else naive == actual,
            "actual_queue_hours": _r(measured[0]["queue_score_hours"], 2) if actual is not None else None,
            "predicted_queue_hours_next": next((_r(r["queue_score_hours"], 2) for r in measured if r["phase_id"] == top), None),
            "forecast_hours": _r(ranked[0]["forecast_hours"], 2) if top is not None else None,
        })
    return out


def bottleneck_backtest_score() -> dict | None:
    """The latest stored bottleneck backtest: how often #1 was the phase with the most measured queue next."""
    from orders.models import BottleneckBacktest

    latest = BottleneckBacktest.objects.order_by("-created_at", "-id").first()
    if latest is None:
        return None
    return {"id": latest.id, "created_at": latest.created_at, "start": latest.start, "weeks": latest.weeks,
            "scored_weeks": latest.scored_weeks, "hits": latest.hits,
            "hit_rate": _r(ratio(latest.hits, latest.scored_weeks), 4),
            "horizon_days": latest.horizon_days, "data_as_of": latest.data_as_of}


@versioned_cache("orders.bottlenecks", warm=True)
def bottlenecks(*, as_of: datetime) -> dict:
    """Phases ranked by the queue forecast for the next 4 weeks with its components; the #1 phase week by week
    (12 weeks)."""
    names = phase_names()
    table = bottleneck_table(as_of=as_of)
    weeks = [as_of - timedelta(days=7 * k) for k in range(TREND_WEEKS - 1, -1, -1)]
    flows = measured_flow(snapshots=weeks)
    routes = standard_routes()
    trend = []
    for t in weeks:
        ranked = rank_bottlenecks(flow=flows.get(t, {}), active=active_orders_at(as_of=t), as_of=t, routes=routes,
                                  successors=stall_thresholds(as_of=t)["next_phase"])
        top = ranked[0] if ranked and ranked[0]["forecast_hours"] > 0 else None
        trend.append({
            "week_ending": t,
            "top_phase": None if top is None else {"id": top["phase_id"], "name": names.get(top["phase_id"])},
            "queue_hours": _r(top and top["queue_score_hours"], 2),
            "forecast_hours": _r(top and top["forecast_hours"], 2),
        })
    summary = state_summary(as_of=as_of)
    active_n = sum(summary["states"][s] for s in ACTIVE_STATES)
    active = active_orders_at(as_of=as_of)
    placed_active = sum(1 for r in active if r["phase_id"] is not None)
    _, route_basis = expected_visits(active=active, routes=routes, successors=stall_thresholds(as_of=as_of)["next_phase"])
    phases = [{
        "rank": row["rank"],
        "phase": {"id": row["phase_id"], "name": names.get(row["phase_id"])},
        "forecast_queue_hours": figure(
            {"total": _r(row["forecast_hours"], 3), "from_expected_visits": _r(row["forecast_from_visits_hours"], 3),
             "from_recent_queue": _r(row["forecast_from_recent_hours"], 3),
             "expected_visits": {"waiting_now": row["visits_waiting"], "on_route_next_steps": row["visits_upstream"]},
             "mean_wait": _r(row["forecast_mean_wait_hours"], 3)},
            basis=THEORETICAL, coverage=_r(ratio(placed_active, active_n), 4), n=row["forecast_waits_measured"],
            horizon_days=BOTTLENECK_BACKTEST_HORIZON_DAYS, mean_wait_window_days=BOTTLENECK_WAIT_DAYS,
            route_steps=BOTTLENECK_ROUTE_STEPS, recent_weight=BOTTLENECK_RECENT_WEIGHT),
        "queue_time_hours": figure(
            {"total": _r(row["queue_score_hours"], 3), "measured_in_window": _r(row["measured_queue_seconds"] / 3600.0, 3),
             "waiting_now": _r(row["waiting_seconds"] / 3600.0, 3), "mean_wait": _r(row["mean_wait_hours"], 3)},
            basis=OBSERVED, coverage=1.0, n=row["queue_events"], window_days=BOTTLENECK_WINDOW_DAYS),
        "queue_size": row["waiting_orders"],
        "in_progress": row["in_progress"],
        "throughput_per_day": figure(_r(row["throughput_per_day"], 4), basis=OBSERVED, coverage=1.0,
                                     window_days=BOTTLENECK_WINDOW_DAYS),
        "utilisation": figure(_r(row["utilisation"], 4), basis=OBSERVED,
                              coverage=1.0 if row["peak_concurrency"] else 0.0,
                              capacity_observed=row["peak_concurrency"],
                              note="busy time over the window times the most orders seen in the phase at once"),
        "enough_volume": row["enough_volume"],
    } for row in table]
    return {
        "as_of": as_of,
        "rule": bottleneck_rule(),
        "basis": OBSERVED,
        "coverage": _r(ratio(placed_active, active_n), 4),
        # Where the orders' next steps came from (the expected visits): their product's standard route, the phases
        # that usually followed, or nowhere (those orders count only where they wait).
        "next_steps_basis": {how: route_basis.get(how, 0) for how in ("standard_route", "usual_next_phase", "none")},
        "active_orders": active_n,
        "stalled_orders": summary["states"][OrderState.STALLED],
        "placement": summary["placement"],
        "phases": phases,
        "top_bottleneck_by_week": trend,
        "backtest": bottleneck_backtest_score(),
    }
