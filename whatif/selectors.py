"""Reads for the what-if engine: the WIP, routes, capacities and duration samples at an as-of moment."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import connection

from whatif.engine import ArrivalMix, SimInput, SimOrder
from whatif.models import WhatIfRun

logger = logging.getLogger(__name__)

CAPACITY_WINDOW_DAYS = 90
CAPACITY_SAMPLE_HOURS = 2
CAPACITY_PERCENTILE = 0.9
DURATION_WINDOW_DAYS = 90  # backtested: 60, 90 and 180 days; 90 kept all four tested starts within 15%
ROUTE_WINDOW_DAYS = 180
MIN_FAMILY_PHASE_SAMPLES = 5
DAY = 86400.0


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def phase_names() -> dict[int, str]:
    return dict(_rows("SELECT id, name FROM orders_phase", {}))


def capacity_by_phase(*, as_of: datetime, window_days: int = CAPACITY_WINDOW_DAYS) -> dict[int, dict]:
    """Servers per phase: the p90 of the number of concurrently open order phases over the window.

    One query fetches the spans that overlap the window: those whose event time (their end, else their
    start) is after the window start (partitions pruned), plus the phases still open that started
    before it (partial index on is_open); the sweep over samples every
    CAPACITY_SAMPLE_HOURS is done here with bisection, which beats a samples x spans range join."""
    start = as_of - timedelta(days=window_days)
    rows = _rows(
        """
        SELECT phase_id, extract(epoch FROM started_at)::float8, extract(epoch FROM ended_at)::float8
        FROM orders_orderphase
        WHERE event_time > %(start)s AND phase_id IS NOT NULL AND started_at IS NOT NULL
          AND started_at <= %(as_of)s
        UNION ALL
        SELECT phase_id, extract(epoch FROM started_at)::float8, NULL
        FROM orders_orderphase
        WHERE is_open AND event_time <= %(start)s AND phase_id IS NOT NULL
        """,
        {"as_of": as_of, "start": start},
    )
    starts: dict[int, list[float]] = defaultdict(list)
    ends: dict[int, list[float]] = defaultdict(list)
    for phase, s, e in rows:
        starts[phase].append(float(s))
        ends[phase].append(float(e) if e is not None else float("inf"))
    t0, t1 = start.timestamp(), as_of.timestamp()
    step = CAPACITY_SAMPLE_HOURS * 3600.0
    samples = [t0 + k * step for k in range(int((t1 - t0) // step) + 1)]
    out = {}
    for phase in starts:
        s, e = sorted(starts[phase]), sorted(ends[phase])
        counts = sorted(bisect_right(s, t) - bisect_right(e, t) for t in samples)
        pos = (len(counts) - 1) * CAPACITY_PERCENTILE
        lo = int(pos)
        hi = min(lo + 1, len(counts) - 1)
        p90 = counts[lo] + (counts[hi] - counts[lo]) * (pos - lo)
        out[phase] = {"servers": max(1, round(p90)), "p90_concurrent": round(p90, 2), "max_concurrent": counts[-1],
                      "mean_concurrent": round(sum(counts) / len(counts), 3)}
    return out


def step_samples(*, as_of: datetime, window_days: int = DURATION_WINDOW_DAYS) -> dict[str, tuple[dict, dict, tuple]]:
    """Observed durations and waits (days) of the first passes (rework skipped) started in the window.

    duration = end - start (elapsed), for phases ended by as-of; wait = start minus the previous
    phase's end (rework time stays inside it), or minus the order's creation for the first phase,
    0 when phases overlap. Each by (family, phase) (only with >= MIN_FAMILY_PHASE_SAMPLES samples,
    else the engine falls back), by phase, and all. One query; expected plan: the phases of orders
    created since the window start less a margin, hash-joined to orders and products, a window sort
    per order for the previous end, then one sorted array per group and kind."""
    start = as_of - timedelta(days=window_days)
    rows = _rows(
        """
        WITH steps AS (
            SELECT coalesce(p.family, 'UNKNOWN') AS family, op.phase_id, op.started_at, op.ended_at,
                   coalesce(lag(op.ended_at) OVER w, mo.created_at) AS previous_end
            FROM orders_orderphase op
            JOIN orders_manufacturingorder mo ON mo.id = op.order_id
            LEFT JOIN orders_product p ON p.id = mo.product_id
            WHERE mo.created_at > %(created_after)s AND mo.created_at <= %(as_of)s
              AND op.started_at IS NOT NULL AND op.started_at <= %(as_of)s AND NOT op.is_rework
              AND op.phase_id IS NOT NULL
            WINDOW w AS (PARTITION BY op.order_id ORDER BY op.sequence, op.started_at, op.id)
        ), measured AS (
            SELECT family, phase_id,
                   CASE WHEN ended_at <= %(as_of)s AND ended_at >= started_at
                        THEN extract(epoch FROM ended_at - started_at)::float8 / 86400.0 END AS duration,
                   CASE WHEN previous_end <= %(as_of)s
                        THEN greatest(extract(epoch FROM started_at - previous_end)::float8, 0) / 86400.0 END AS wait
            FROM steps WHERE started_at > %(start)s
        )
        SELECT family, phase_id,
               array_agg(duration ORDER BY duration) FILTER (WHERE duration IS NOT NULL),
               array_agg(wait ORDER BY wait) FILTER (WHERE wait IS NOT NULL)
        FROM measured GROUP BY 1, 2
        """,
        {"as_of": as_of, "start": start, "created_after": start - timedelta(days=window_days)},
    )
    out = {}
    for kind, col in (("durations", 2), ("waits", 3)):
        fp, by_p, everything = {}, defaultdict(list), []
        for row in rows:
            values = row[col] or []
            if len(values) >= MIN_FAMILY_PHASE_SAMPLES:
                fp[(row[0], row[1])] = tuple(values)
            by_p[row[1]].extend(values)
            everything.extend(values)
        out[kind] = (fp, {k: tuple(sorted(v)) for k, v in by_p.items() if v}, tuple(sorted(everything)))
    return out


def standard_routes() -> dict[int, tuple[int, ...]]:
    """Each product's standard route (FasesStandardModelos) as phase ids in sequence order."""
    routes: dict[int, list[int]] = defaultdict(list)
    for product, phase in _rows("SELECT product_id, phase_id FROM orders_routestep ORDER BY product_id, sequence, id", {}):
        routes[product].append(phase)
    return {k: tuple(v) for k, v in routes.items()}


def observed_family_routes(*, as_of: datetime, window_days: int = ROUTE_WINDOW_DAYS) -> dict[str, tuple[int, ...]]:
    """Per family, the most common phase sequence (rework passes left out) of orders finished in the window.

    Key "*" holds the most common sequence over all families. One query; expected plan: a hash join of
    the finished orders (index on finished_at) with the order phases of partitions up to as-of."""
    rows = _rows(
        """
        WITH seqs AS (
            SELECT coalesce(p.family, 'UNKNOWN') AS family,
                   string_agg(op.phase_id::text, ',' ORDER BY op.sequence, op.started_at, op.id) AS route
            FROM orders_manufacturingorder mo
            LEFT JOIN orders_product p ON p.id = mo.product_id
            JOIN orders_orderphase op ON op.order_id = mo.id
            WHERE mo.finished_at > %(start)s AND mo.finished_at <= %(as_of)s
              AND op.event_time <= %(as_of)s AND NOT op.is_rework AND op.phase_id IS NOT NULL
            GROUP BY mo.id, 1
        )
        SELECT family, route, count(*) FROM seqs GROUP BY family, route
        """,
        {"as_of": as_of, "start": as_of - timedelta(days=window_days)},
    )
    by_family: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for family, route, n in rows:
        by_family[family][route] += n
        overall[route] += n

    def mode(counter: Counter) -> tuple[int, ...]:
        route, _ = min(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(int(x) for x in route.split(","))

    out = {family: mode(c) for family, c in by_family.items()}
    if overall:
        out["*"] = mode(overall)
    return out


def wip_rows(*, as_of: datetime) -> list[tuple]:
    """Orders open at as-of (created by then, not finished by then) and their progress then.

    Returns (order id, product id, family, created day relative to as-of, started phase ids,
    phase in service at as-of, its elapsed days, days since the last phase ended or the creation). One query; expected plan: the open-at-as-of orders
    (index on created_at) hash-joined to their phases started by as-of."""
    return _rows(
        """
        WITH wip AS (
            SELECT mo.id, mo.product_id, coalesce(p.family, 'UNKNOWN') AS family, mo.created_at
            FROM orders_manufacturingorder mo
            LEFT JOIN orders_product p ON p.id = mo.product_id
            WHERE mo.created_at <= %(as_of)s AND (mo.finished_at IS NULL OR mo.finished_at > %(as_of)s)
        )
        SELECT w.id, w.product_id, w.family, extract(epoch FROM w.created_at - %(as_of)s) / 86400.0,
               array_remove(array_agg(DISTINCT op.phase_id), NULL),
               (array_agg(op.phase_id ORDER BY op.started_at DESC, op.id DESC)
                    FILTER (WHERE op.ended_at IS NULL OR op.ended_at > %(as_of)s))[1],
               (array_agg(extract(epoch FROM %(as_of)s - op.started_at) / 86400.0
                          ORDER BY op.started_at DESC, op.id DESC)
                    FILTER (WHERE op.ended_at IS NULL OR op.ended_at > %(as_of)s))[1],
               extract(epoch FROM %(as_of)s - coalesce(max(op.ended_at) FILTER (WHERE op.ended_at <= %(as_of)s),
                                                      w.created_at)) / 86400.0
        FROM wip w
        LEFT JOIN orders_orderphase op ON op.order_id = w.id AND op.started_at <= %(as_of)s
             AND op.phase_id IS NOT NULL
        GROUP BY w.id, w.product_id, w.family, w.created_at
        ORDER BY w.id
        """,
        {"as_of": as_of},
    )


def orders_created_between(*, start: datetime, end: datetime) -> list[tuple]:
    """(order id, product id, family, created day relative to start) of orders created in (start, end]."""
    return _rows(
        """
        SELECT mo.id, mo.product_id, coalesce(p.family, 'UNKNOWN'),
               extract(epoch FROM mo.created_at - %(start)s) / 86400.0
        FROM orders_manufacturingorder mo
        LEFT JOIN orders_product p ON p.id = mo.product_id
        WHERE mo.created_at > %(start)s AND mo.created_at <= %(end)s
        ORDER BY mo.created_at, mo.id
        """,
        {"start": start, "end": end},
    )


def weekly_completions(*, start: datetime, weeks: int) -> list[int]:
    """Orders really finished in each week after start (the backtest's ground truth)."""
    rows = _rows(
        """
        SELECT floor(extract(epoch FROM finished_at - %(start)s) / (7 * 86400.0))::int AS week, count(*)
        FROM orders_manufacturingorder
        WHERE finished_at > %(start)s AND finished_at <= %(end)s
        GROUP BY 1
        """,
        {"start": start, "end": start + timedelta(weeks=weeks)},
    )
    out = [0] * weeks
    for week, n in rows:
        out[min(week, weeks - 1)] += n
    return out


def risk_by_order(*, as_of: datetime, orders: list[SimOrder]) -> tuple[dict[int, float], str]:
    """Risk score per open order from the risk queue when it exists, else the order's age (stated)."""
    try:
        from orders.selectors import risk_scores  # written by the orders domain
    except ImportError:
        risk_scores = None
    if risk_scores is not None:
        try:
            raw = risk_scores(as_of=as_of)
            items = raw.items() if isinstance(raw, dict) else (
                (r.get("order_id", r.get("id")), r.get("score", r.get("risk_score"))) for r in raw)
            scores = {int(k): float(v) for k, v in items if k is not None and v is not None}
            return scores, "orders.selectors.risk_scores"
        except Exception:  # noqa: BLE001 - the risk queue is another domain's; fall back, and say so
            logger.warning("risk_scores unavailable; falling back to order age", exc_info=True)
    return {o.order_id: -o.created_day for o in orders if o.order_id is not None}, "order_age_fallback"


def _route_for(product_id, family, routes, family_routes) -> tuple[tuple[int, ...], str]:
    if product_id in routes:
        return routes[product_id], "standard"
    if family in family_routes:
        return family_routes[family], "family_observed"
    return family_routes.get("*", ()), "global_observed"


def gather_sim_input(
    *, as_of: datetime, arrival_weeks: int = 8, real_arrivals_days: float | None = None, with_risk: bool = False,
) -> SimInput:
    """Everything the engine needs at as-of, in plain structures (one query per kind of data).

    real_arrivals_days: feed the orders really created in (as_of, as_of + days] instead of a
    synthetic stream (the backtest)."""
    phases = phase_names()
    capacity = capacity_by_phase(as_of=as_of)
    samples = step_samples(as_of=as_of)
    fp, by_phase, everything = samples["durations"]
    gap_fp, gap_phase, gap_all = samples["waits"]
    routes = standard_routes()
    family_routes = observed_family_routes(as_of=as_of)

    orders: list[SimOrder] = []
    route_basis: Counter = Counter()
    located = in_service = 0
    for oid, product_id, family, created_day, started, service_phase, elapsed, waited in wip_rows(as_of=as_of):
        route, basis = _route_for(product_id, family, routes, family_routes)
        route_basis[basis] += 1
        done = set(started or ())
        pos = max((i for i, p in enumerate(route) if p in done), default=-1)
        located += pos >= 0 or not done
        if service_phase is not None and pos >= 0 and route[pos] == service_phase:
            remaining, el = route[pos:], float(elapsed)
        elif service_phase is not None:
            remaining, el = (service_phase, *route[pos + 1:]), float(elapsed)
        else:
            remaining, el = route[pos + 1:], None
        in_service += el is not None
        orders.append(SimOrder(key=f"wip:{oid}", order_id=oid, product_id=product_id, family=family,
                               route=tuple(remaining), created_day=float(created_day), in_service_elapsed=el,
                               waiting_elapsed=None if el is not None else max(0.0, float(waited))))

    risk_basis = None
    if with_risk:
        scores, risk_basis = risk_by_order(as_of=as_of, orders=orders)
        orders = [SimOrder(**{**o.__dict__, "risk": scores.get(o.order_id, 0.0)}) for o in orders]

    recent = orders_created_between(start=as_of - timedelta(weeks=arrival_weeks), end=as_of)
    mix = [ArrivalMix(product_id, family, _route_for(product_id, family, routes, family_routes)[0])
           for _, product_id, family, _ in recent]
    fixed = None
    if real_arrivals_days is not None:
        fixed = []
        for oid, product_id, family, day in orders_created_between(
                start=as_of, end=as_of + timedelta(days=real_arrivals_days)):
            route = _route_for(product_id, family, routes, family_routes)[0]
            fixed.append(SimOrder(key=f"new:{oid}", order_id=oid, product_id=product_id, family=family,
                                  route=route, created_day=float(day), arrival_day=max(float(day), 1e-9)))
    for route in [o.route for o in orders] + [m.route for m in mix]:
        for p in route:
            phases.setdefault(p, f"phase {p}")
    n = len(orders)
    return SimInput(
        phases=phases,
        capacity={p: c["servers"] for p, c in capacity.items()},
        durations_family_phase=fp,
        durations_phase=by_phase,
        durations_global=everything,
        orders=orders,
        arrival_rate_per_day=len(recent) / (7.0 * arrival_weeks) if arrival_weeks else 0.0,
        arrival_mix=mix,
        fixed_arrivals=fixed,
        gaps_family_phase=gap_fp,
        gaps_phase=gap_phase,
        gaps_global=gap_all,
        meta={
            "as_of": as_of.isoformat(),
            "wip_orders": n,
            "wip_in_service": in_service,
            "route_basis": dict(route_basis),
            "progress_located_coverage": round(located / n, 4) if n else None,
            "capacity": {str(p): c for p, c in sorted(capacity.items())},
            "capacity_rule": f"servers = round(p{int(CAPACITY_PERCENTILE * 100)} of concurrently open order phases, "
                             f"sampled every {CAPACITY_SAMPLE_HOURS} h over the {CAPACITY_WINDOW_DAYS} days "
                             "before as-of), at least 1",
            "duration_rule": f"elapsed durations of first passes started in the {DURATION_WINDOW_DAYS} days before "
                             "as-of and ended by then, "
                             f"by (family, phase) when >= {MIN_FAMILY_PHASE_SAMPLES} samples, else phase, else all",
            "duration_samples": len(everything),
            "wait_rule": "before each step, a wait drawn from the observed waits before that phase (its start minus "
                         "the previous phase's end, or the order's creation) in the "
                         f"{DURATION_WINDOW_DAYS} days before as-of, by (family, phase), else phase, else all; "
                         "replayed without a server, so capacity changes act on the simulated queue only",
            "wait_samples": len(gap_all),
            "arrival_rule": f"Poisson at the rate of orders created in the {arrival_weeks} weeks before as-of, "
                            "products drawn from those orders" if real_arrivals_days is None
                            else "the orders really created after the start date",
            "arrival_rate_per_week": round(len(recent) / arrival_weeks, 3) if arrival_weeks else 0.0,
            "risk_basis": risk_basis,
        },
    )


def cached_sim_input(*, as_of: datetime, arrival_weeks: int = 8, with_risk: bool = False) -> SimInput:
    """gather_sim_input through the versioned cache: scenarios on the same data share one gathering."""
    from prodplan.cache import cached

    return cached("whatif.sim_input", {"as_of": as_of.isoformat(), "arrival_weeks": arrival_weeks, "risk": with_risk},
                  lambda: gather_sim_input(as_of=as_of, arrival_weeks=arrival_weeks, with_risk=with_risk))


def latest_backtest():
    from whatif.models import WhatIfBacktest

    return WhatIfBacktest.objects.order_by("-created_at", "-id").first()


def run_list():
    """Runs newest first; outputs deferred (the list does not need them)."""
    return WhatIfRun.objects.defer("outputs").order_by("-created_at", "-id")
