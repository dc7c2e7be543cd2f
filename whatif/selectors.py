"""Reads for the what-if engine: the WIP, routes, capacities and duration samples at an as-of moment."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import connection

from orders.choices import OrderState
from orders.selectors import active_orders_at, open_orders_at
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


# Family and phases reached by as_of (started or ended by then) of the WIP orders, keyed by their ids.
# Expected plan: the ids unnested, the orders by primary key, products hashed, the order phases of each order by
# orders_op_order_seq_idx in every partition.
_WIP_PROGRESS_SQL = """
SELECT w.id, coalesce(p.family, 'UNKNOWN'),
       coalesce(array_agg(DISTINCT op.phase_id) FILTER (WHERE op.phase_id IS NOT NULL), '{}')
FROM unnest(%(ids)s::bigint[]) AS w(id)
JOIN orders_manufacturingorder mo ON mo.id = w.id
LEFT JOIN orders_product p ON p.id = mo.product_id
LEFT JOIN orders_orderphase op ON op.order_id = w.id AND op.phase_id IS NOT NULL
     AND (op.started_at <= %(as_of)s OR op.ended_at <= %(as_of)s)
GROUP BY w.id, p.family
"""


def wip_rows(*, as_of: datetime) -> list[dict]:
    """The WIP at as_of from the order state: the active orders (orders.selectors.active_orders_at: open,
    neither stalled nor abandoned), each with its state row (state, phase_id, since, placement_basis,
    created_at...) plus its family and the phases it reached by as_of ('reached'; one query keyed by the ids)."""
    states = active_orders_at(as_of=as_of)
    if not states:
        return []
    progress = {oid: (family, tuple(reached)) for oid, family, reached in
                _rows(_WIP_PROGRESS_SQL, {"ids": [r["order_id"] for r in states], "as_of": as_of})}
    return [{**r, "family": progress[r["order_id"]][0], "reached": progress[r["order_id"]][1]} for r in states]


def remaining_route(route: tuple[int, ...], reached: tuple[int, ...], phase_id: int | None) -> tuple[int, ...]:
    """What is left of a route for an order at phase_id (its state's phase) having reached these phases.

    From the position phase onward: route[i:] for its first occurrence i at or after the furthest step
    reached; a position phase elsewhere (a rework, a phase off the route) goes first, then the steps after the
    furthest reached; no position phase: the steps after the furthest reached."""
    done = set(reached)
    pos = max((i for i, p in enumerate(route) if p in done), default=-1)
    if phase_id is None:
        return tuple(route[pos + 1:])
    at = next((i for i in range(max(pos, 0), len(route)) if route[i] == phase_id), None)
    if at is not None:
        return tuple(route[at:])
    return (phase_id, *route[pos + 1:])


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
    placement: Counter = Counter()
    in_service = placed = undated = 0
    for r in wip_rows(as_of=as_of):
        oid, product_id, family = r["order_id"], r["product_id"], r["family"]
        route, basis = _route_for(product_id, family, routes, family_routes)
        route_basis[basis] += 1
        placement[r["placement_basis"]] += 1
        placed += r["phase_id"] is not None
        in_state = None if r["since"] is None else max(0.0, (as_of - r["since"]).total_seconds() / DAY)
        serving = r["state"] == OrderState.IN_PROGRESS and r["phase_id"] is not None
        in_service += serving
        if r["created_at"] is None:
            undated += 1
        orders.append(SimOrder(
            key=f"wip:{oid}", order_id=oid, product_id=product_id, family=family,
            route=remaining_route(route, r["reached"], r["phase_id"]),
            created_day=0.0 if r["created_at"] is None else (r["created_at"] - as_of).total_seconds() / DAY,
            in_service_elapsed=(in_state or 0.0) if serving else None,
            waiting_elapsed=None if serving else in_state))
    excluded = Counter(r["state"] for r in open_orders_at(as_of=as_of))  # cached: the rows wip_rows stands on

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
            "wip_rule": "the active orders of the order state at as_of (orders.selectors.ORDER_STATE_RULE): open, "
                        "neither stalled nor abandoned; each starts at its state's phase, in service there "
                        "(in_progress, elapsed = as_of - since) or waiting before it (waited = as_of - since), "
                        "and follows its route (the product's standard route, else its family's observed one) "
                        "from that phase on",
            "wip_in_service": in_service,
            "wip_undated": undated,
            "stalled_orders_excluded": excluded[OrderState.STALLED],
            "abandoned_orders_excluded": excluded[OrderState.ABANDONED],
            "placement_basis": dict(placement),
            "route_basis": dict(route_basis),
            "progress_located_coverage": round(placed / n, 4) if n else None,
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
