"""The order state: where every order is at an as-of time (the one definition), its thresholds and summaries."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.expressions import RawSQL

from orders.choices import OrderState, PlacementBasis
from orders.models import (
    Product,
)
from orders.selectors.common import DAY, _fetch, _r, phase_names
from prodplan.asof import data_as_of
from prodplan.cache import versioned_cache
from prodplan.gates import (
    OBSERVED,
    figure,
    ratio,
)

ORDER_STATE_RULE = (
    "At as_of, every order created by then is in exactly one state, from what was known at as_of only (orders "
    "created, phase starts and ends at or before as_of; a phase that ended later is in progress): finished "
    "(finished by as_of); abandoned (marked by a data steward); stalled (open, and no event (creation, a phase "
    "start or end) for longer than its position's stall threshold); in_progress at the phase started and not "
    "ended (the latest start wins); not_started (no phase started); else waiting before its next phase. The "
    "phase is placed, strongest basis first, by: the phase in progress; the first phase row not started after "
    "the furthest row reached (by sequence); the next step of the product's standard route after the furthest "
    "step reached; the phase that most often followed the last finished one (or came first) in the phases seen "
    "in the 180 days before as_of; the ERP's current phase (Of_FaseId, only when as_of is at or after the snapshot); else "
    "unknown. Time in state ('since'): the phase's start (in progress), the last phase end (waiting), the "
    "creation (not started), the last event (stalled)."
)


STALL_RULE = (
    "stalled when the time since the order's last event exceeds max(floor, p{pct} of the event-free gaps "
    "measured at that phase (the wait before it: its start minus the previous phase's end or the order's "
    "creation; and its duration) over the {window} days before the first day of as_of's month (Lisbon), using "
    "all phases' gaps when a phase has fewer than {min_n}; learnt once a month, so every date of a month (and a "
    "trend over weeks) shares them, with nothing from after as_of"
)


OPEN_STATES = (OrderState.NOT_STARTED, OrderState.WAITING, OrderState.IN_PROGRESS, OrderState.STALLED)


# The orders a supervisor plans: open, neither stalled nor abandoned (WIP, flow KPIs, bottlenecks, risk).
ACTIVE_STATES = (OrderState.NOT_STARTED, OrderState.WAITING, OrderState.IN_PROGRESS)


STALL_PERCENTILE = 0.99


STALL_WINDOW_DAYS = 180


STALL_MIN_GAPS = 30


# The function is created by migration orders.0004_order_state; every reader calls it through here.
ORDER_STATE_CALL = "orders_order_state(%(as_of)s, %(snapshot_at)s, %(stall)s, %(lead)s, %(order_ids)s)"


# Gaps with no event of an order, per phase it was at, measured over the window before as_of (partitions
# pruned on event_time): the wait before a phase (its start minus the previous phase's end, or the order's
# creation for an order's first phase in the window when the order was created inside it) and its duration.
_STALL_GAPS_SQL = """
WITH r AS (
    SELECT p.phase_id, p.started_at, p.ended_at,
           CASE WHEN row_number() OVER w = 1 THEN CASE WHEN o.created_at > %(start)s THEN o.created_at END
                ELSE lag(CASE WHEN p.ended_at <= %(as_of)s THEN p.ended_at END) OVER w END AS previous_end,
           CASE WHEN row_number() OVER w = 1 THEN CASE WHEN o.created_at > %(start)s THEN 'start' END
                ELSE (lag(p.phase_id) OVER w)::text END AS previous_phase
    FROM {phases} p JOIN orders_manufacturingorder o ON o.id = p.order_id
    -- no upper bound on event_time (an end after as_of): a phase started by as_of and ended later was in
    -- progress then, and the wait before it was known (its end is cut above and below)
    WHERE p.started_at <= %(as_of)s AND p.phase_id IS NOT NULL
    WINDOW w AS (PARTITION BY p.order_id ORDER BY p.started_at, p.sequence, p.id)
), gaps AS (
    SELECT phase_id, extract(epoch FROM started_at - previous_end) AS gap FROM r WHERE previous_end <= started_at
    UNION ALL
    SELECT phase_id, extract(epoch FROM ended_at - started_at) FROM r WHERE ended_at <= %(as_of)s
)
SELECT 'gap' AS kind, phase_id, NULL AS previous_phase, count(*) AS n,
       percentile_cont(%(pct)s) WITHIN GROUP (ORDER BY gap) AS threshold
FROM gaps GROUP BY ROLLUP (phase_id)
UNION ALL
SELECT 'next', phase_id, previous_phase, count(*), NULL FROM r WHERE previous_phase IS NOT NULL
GROUP BY previous_phase, phase_id
"""


def phases_since(start: str) -> str:
    """The order phases a window starting at `start` (a SQL parameter or expression) can need, partitions pruned.

    event_time is a phase's end when it has one, so a phase that started before the window and was still open
    at as_of has event_time = its end (later data) or its start (a snapshot taken at as_of, where it has no end
    yet). Both must give the same rows: the phases with event_time after the start, plus every phase still open
    in the data (partial index orders_op_open_phase_idx)."""
    return (f"(SELECT * FROM orders_orderphase WHERE event_time > {start} "
            f"UNION ALL SELECT * FROM orders_orderphase WHERE is_open AND event_time <= {start})")


def stall_learnt_at(as_of: datetime) -> datetime:
    """When the stall thresholds used at as_of were learnt: the first instant of as_of's month, Lisbon time."""
    from django.utils import timezone

    local = timezone.localtime(as_of)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def stall_thresholds(*, as_of: datetime) -> dict:
    """The stall threshold (seconds) per phase at as_of (STALL_RULE) and the usual next phases, learnt from the
    gaps measured before the first day of as_of's month; cached per month."""
    return _learn_stall_thresholds(as_of=stall_learnt_at(as_of))


@versioned_cache("orders.stall_thresholds")
def _learn_stall_thresholds(*, as_of: datetime) -> dict:
    """Learn STALL_RULE's thresholds and the usual next phases from the gaps measured before as_of (one query;
    cached, so per month through stall_thresholds)."""
    floor = settings.ORDER_STALLED_FLOOR_DAYS * DAY
    start = as_of - timedelta(days=STALL_WINDOW_DAYS)
    found = _fetch(_STALL_GAPS_SQL.format(phases=phases_since("%(start)s")),
                   {"as_of": as_of, "start": start, "pct": STALL_PERCENTILE})
    rows = [r for r in found if r["kind"] == "gap"]
    # The phase that most often came next after each phase (or first: 'start'), ties to the lowest id.
    successors: dict[str, tuple[int, int]] = {}
    for r in found:
        if r["kind"] == "next":
            best = successors.get(r["previous_phase"])
            if best is None or (r["n"], -r["phase_id"]) > (best[1], -best[0]):
                successors[r["previous_phase"]] = (int(r["phase_id"]), r["n"])
    overall = next((r for r in rows if r["phase_id"] is None), None)
    default = max(floor, float(overall["threshold"])) if overall and overall["n"] else floor
    per_phase = {int(r["phase_id"]): max(floor, float(r["threshold"]))
                 for r in rows if r["phase_id"] is not None and r["n"] >= STALL_MIN_GAPS}
    return {
        "default_seconds": default,
        "phase_seconds": per_phase,
        "next_phase": {previous: phase for previous, (phase, _) in sorted(successors.items())},
        "floor_days": settings.ORDER_STALLED_FLOOR_DAYS,
        "percentile": STALL_PERCENTILE,
        "window_days": STALL_WINDOW_DAYS,
        "min_gaps": STALL_MIN_GAPS,
        "gaps_measured": overall["n"] if overall else 0,
        "rule": STALL_RULE.format(pct=int(STALL_PERCENTILE * 100), window=STALL_WINDOW_DAYS, min_n=STALL_MIN_GAPS),
        "learnt_at": as_of,
    }


# Lead-time percentiles (days) of the orders finished by as_of, per product, per family and over all.
_LEAD_TIME_AT_SQL = """
SELECT o.product_id, p.family, GROUPING(o.product_id, p.family) AS level, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.lead_time_days) AS p50,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY o.lead_time_days) AS p75,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY o.lead_time_days) AS p90,
       avg(o.lead_time_days) AS mean,
       percentile_cont(%(risk)s) WITHIN GROUP (ORDER BY o.lead_time_days) AS at_risk_days,
       percentile_cont(%(late)s) WITHIN GROUP (ORDER BY o.lead_time_days) AS late_days
FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
WHERE o.finished_at <= %(as_of)s AND o.lead_time_days >= 0
GROUP BY GROUPING SETS ((o.product_id, p.family), (p.family), ())
"""


@versioned_cache("orders.lead_time_thresholds")
def lead_time_thresholds(*, as_of: datetime) -> dict:
    """Status thresholds at as_of from the orders finished by then (no hindsight), cached per as_of.

    {"global": {...}, "family": {family: {...}}, "product": {product_id: {...}}}: a product gets its own
    percentiles with at least MIN_HISTORY_FOR_PRODUCT_PERCENTILE finished orders, else its family's (when
    that has enough), else the global ones; each entry carries its scope, n, p50, p75, p90, mean,
    at_risk_days and late_days."""
    rows = _fetch(_LEAD_TIME_AT_SQL, {"as_of": as_of, "risk": settings.ORDER_AT_RISK_PERCENTILE,
                                      "late": settings.ORDER_LATE_PERCENTILE})
    keys = ("n", "p50", "p75", "p90", "mean", "at_risk_days", "late_days")
    empty = {"scope": "global", **{k: None for k in keys}, "n": 0}
    result: dict = {"global": empty, "family": {}, "product": {}}
    own: dict = {}
    for r in rows:
        stats = {k: (float(r[k]) if r[k] is not None and k != "n" else r[k]) for k in keys}
        if r["level"] == 3:
            result["global"] = {"scope": "global", **stats}
        elif r["level"] == 2 and r["family"] is not None:  # GROUPING: product_id (high bit) left out
            result["family"][r["family"]] = {"scope": "family", **stats}
        elif r["level"] == 0 and r["product_id"] is not None:
            own[int(r["product_id"])] = (r["family"], {"scope": "product", **stats})
    minimum = settings.MIN_HISTORY_FOR_PRODUCT_PERCENTILE
    for product_id, family in Product.objects.values_list("id", "family"):
        own.setdefault(product_id, (family, None))
    for product_id, (family, stats) in own.items():
        if stats is not None and stats["n"] >= minimum:
            result["product"][product_id] = stats
        elif family in result["family"] and result["family"][family]["n"] >= minimum:
            result["product"][product_id] = result["family"][family]
    return result


def _lead_param(thresholds: dict) -> dict:
    """The thresholds as the SQL function reads them (product entries only where they differ from global)."""
    fields = ("scope", "at_risk_days", "late_days", "p75")
    glob = {k: thresholds["global"][k] for k in fields}
    return {"global": glob, "product": {str(pid): {k: t[k] for k in fields} for pid, t in thresholds["product"].items()}}


@versioned_cache("orders.export_has_unstarted_rows")
def export_has_unstarted_rows() -> bool:
    """Whether the ERP export writes phase rows before work on them starts (rows with neither start nor end).

    An export that writes a row only once work starts had, at a past as_of, no row for a phase started later;
    the order state must then not see one (no hindsight). Cached per data version."""
    return _fetch(
        "SELECT EXISTS (SELECT 1 FROM orders_orderphase WHERE started_at IS NULL AND ended_at IS NULL) AS found")[0]["found"]


def order_state_params(*, as_of: datetime, order_ids: list[int] | None = None) -> dict:
    """The parameters of ORDER_STATE_CALL at as_of (thresholds computed once per as_of and cached)."""
    from psycopg.types.json import Jsonb

    stall = stall_thresholds(as_of=as_of)
    return {
        "as_of": as_of,
        "snapshot_at": data_as_of() or datetime.max.replace(tzinfo=as_of.tzinfo),
        # What the function needs to know besides the rows: the stall thresholds, the usual next phases, the shape.
        "stall": Jsonb({"default": stall["default_seconds"], "phase": {str(k): v for k, v in stall["phase_seconds"].items()},
                        "next": stall["next_phase"], "unstarted_rows": export_has_unstarted_rows()}),
        "lead": Jsonb(_lead_param(lead_time_thresholds(as_of=as_of))),
        "order_ids": None if order_ids is None else [int(i) for i in order_ids],
    }


_STATE_COLUMNS = (
    "order_id, product_id, created_at, finished_at, state, flow_state, phase_id, placement_basis, since, "
    "last_event_at, reworks, stall_threshold_seconds, age_days, status, threshold_scope, at_risk_days, late_days, "
    "p75_days"
)


def order_states(*, as_of: datetime, order_ids: list[int]) -> dict[int, dict]:
    """The state rows of these orders at as_of (those created by then), by order id; one query."""
    if not order_ids:
        return {}
    sql = f"SELECT {_STATE_COLUMNS} FROM {ORDER_STATE_CALL}"  # noqa: S608 - constant text
    return {r["order_id"]: r for r in _fetch(sql, order_state_params(as_of=as_of, order_ids=order_ids))}


@versioned_cache("orders.open_orders_at")
def open_orders_at(*, as_of: datetime) -> list[dict]:
    """The state rows of every order open at as_of (not finished; stalled and abandoned included), cached per as_of.

    One query; expected plan: the orders created by as_of (seq scan, 27k rows), the phase rows of the open
    ones by order id (orders_op_order_seq_idx in each partition), one aggregate per order."""
    sql = f"SELECT {_STATE_COLUMNS} FROM {ORDER_STATE_CALL} WHERE state <> 'finished' ORDER BY order_id"  # noqa: S608
    return _fetch(sql, order_state_params(as_of=as_of))


def active_orders_at(*, as_of: datetime) -> list[dict]:
    """The open orders a supervisor plans at as_of: neither stalled nor abandoned."""
    return [r for r in open_orders_at(as_of=as_of) if r["state"] in ACTIVE_STATES]


def order_ids_where(*, as_of: datetime, column: str, values: list) -> RawSQL:
    """A subquery of the ids of orders whose state row at as_of has column IN values (for list filters)."""
    if column not in {"state", "status", "phase_id"}:
        raise ValueError(column)
    sql = f"SELECT order_id FROM {ORDER_STATE_CALL} WHERE {column} = ANY(%(values)s)"  # noqa: S608 - checked column
    params = {**order_state_params(as_of=as_of), "values": list(values)}
    # RawSQL takes positional parameters: compile the named ones in order.
    names = ["as_of", "snapshot_at", "stall", "lead", "order_ids", "values"]
    positional = sql
    for name in names:
        positional = positional.replace(f"%({name})s", "%s")
    return RawSQL(positional, [params[n] for n in names])


@versioned_cache("orders.state_summary")
def state_summary(*, as_of: datetime) -> dict:
    """Counts of orders per state at as_of, the placement bases of open orders and the coverage (cached)."""
    rows = open_orders_at(as_of=as_of)
    finished = _fetch(
        f"SELECT count(*) AS n FROM {ORDER_STATE_CALL} WHERE state = 'finished'",  # noqa: S608
        order_state_params(as_of=as_of))[0]["n"]
    states = Counter(r["state"] for r in rows)
    bases = Counter(r["placement_basis"] for r in rows)
    placed = sum(n for basis, n in bases.items() if basis != PlacementBasis.UNKNOWN)
    stall = stall_thresholds(as_of=as_of)
    return {
        "as_of": as_of,
        "rule": ORDER_STATE_RULE,
        "states": {state: (finished if state == OrderState.FINISHED else states.get(state, 0))
                   for state in OrderState.values},
        "open_orders": len(rows),
        "placement": figure({basis: bases.get(basis, 0) for basis in PlacementBasis.values if basis != "none"},
                            basis=OBSERVED, coverage=_r(ratio(placed, len(rows)), 4), placed=placed),
        "stall_threshold": {
            "floor_days": stall["floor_days"], "default_days": _r(stall["default_seconds"] / DAY, 3),
            "by_phase_days": {pid: _r(s / DAY, 3) for pid, s in sorted(stall["phase_seconds"].items())},
            "percentile": stall["percentile"], "window_days": stall["window_days"],
            "gaps_measured": stall["gaps_measured"], "rule": stall["rule"], "learnt_at": stall["learnt_at"],
        },
    }


def stalled_orders(*, as_of: datetime, limit: int | None = None) -> list[dict]:
    """Stalled orders at as_of, longest-idle first, with the phase where they stopped and days since their last event."""
    names = phase_names()
    rows = sorted((r for r in open_orders_at(as_of=as_of) if r["state"] == OrderState.STALLED),
                  key=lambda r: (r["last_event_at"], r["order_id"]))
    return [
        {
            "order_id": r["order_id"],
            "product_id": r["product_id"],
            "phase": None if r["phase_id"] is None else {"id": r["phase_id"], "name": names.get(r["phase_id"])},
            "stalled_while": r["flow_state"],
            "placement_basis": r["placement_basis"],
            "last_event_at": r["last_event_at"],
            "idle_days": _r((as_of - r["last_event_at"]).total_seconds() / DAY, 3),
            "threshold_days": _r(r["stall_threshold_seconds"] / DAY, 3),
            "age_days": _r(r["age_days"], 3),
        }
        for r in rows[:limit]
    ]


def stalled_block(*, as_of: datetime, limit: int | None = None) -> dict:
    """Stalled orders at as_of as every reader shows them: how many, the threshold rule, the longest idle first."""
    summary = state_summary(as_of=as_of)
    return {"count": summary["states"][OrderState.STALLED], "threshold": summary["stall_threshold"],
            "orders": stalled_orders(as_of=as_of, limit=limit)}


def state_payload(row: dict, *, as_of: datetime) -> dict:
    """The API shape of one order's state at as_of (a row of ORDER_STATE_CALL)."""
    names = phase_names()
    finished = row["state"] == OrderState.FINISHED
    return {
        "state": row["state"],
        "phase": None if finished or row["phase_id"] is None else {"id": row["phase_id"], "name": names.get(row["phase_id"])},
        "placement_basis": row["placement_basis"],
        "since": row["since"],
        "in_state_days": None if row["since"] is None else _r((as_of - row["since"]).total_seconds() / DAY, 3),
        "last_event_at": row["last_event_at"],
        "stall_threshold_days": None if row["stall_threshold_seconds"] is None else _r(row["stall_threshold_seconds"] / DAY, 3),
        "stalled_while": row["flow_state"] if row["state"] in (OrderState.STALLED, OrderState.ABANDONED) else None,
    }
