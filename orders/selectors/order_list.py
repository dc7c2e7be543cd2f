"""The order list and one order's detail at an as-of time; order-id search."""

from __future__ import annotations

from datetime import datetime

from django.db.models import CharField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast

from orders.choices import OrderState
from orders.models import (
    ManufacturingOrder,
    Product,
)
from orders.selectors.common import _fetch, _product_payload, _r, phase_choices
from orders.selectors.state import open_orders_at, order_states, state_payload
from prodplan.db import fetch_prepared
from prodplan.gates import (
    THEORETICAL,
    figure,
)


def order_queryset(*, as_of: datetime) -> QuerySet:
    """Orders that exist at as_of (created by then, or undated), with their product; newest first.

    State, status and position come from order_states() for the rows shown, and the list filters on them
    through order_ids_where() (both the one SQL definition)."""
    product = Product.objects.filter(id=OuterRef("product_id"))
    return (
        ManufacturingOrder.objects.filter(Q(created_at__lte=as_of) | Q(created_at__isnull=True))
        .annotate(product_name=Subquery(product.values("name")[:1]), product_family=Subquery(product.values("family")[:1]))
        .order_by("-id")
    )


ORDER_FIELDS = ("id", "product_id", "product_name", "product_family", "created_at", "finished_at", "lead_time_days")


def order_rows(*, as_of: datetime, rows: list[dict]) -> list[dict]:
    """The API shape of order rows (dicts of ORDER_FIELDS) at as_of: one query for their states."""
    states = order_states(as_of=as_of, order_ids=[r["id"] for r in rows])
    return [order_row_payload(r, states.get(r["id"]), as_of=as_of) for r in rows]


def order_row_payload(row: dict, state: dict | None, *, as_of: datetime) -> dict:
    """One order at as_of: its base columns (ORDER_FIELDS) and its state row."""
    state = state or {"state": None, "status": None, "phase_id": None, "placement_basis": None, "since": None,
                      "last_event_at": None, "stall_threshold_seconds": None, "flow_state": None, "age_days": None,
                      "threshold_scope": None, "at_risk_days": None, "late_days": None}
    done = state["state"] == OrderState.FINISHED
    position = state_payload(state, as_of=as_of) if state["state"] else None
    return {
        "id": row["id"],
        "product": _product_payload(row["product_id"], row["product_name"], row["product_family"]),
        "created": row["created_at"],
        "finished": row["finished_at"] if done else None,
        "status": state["status"],
        "state": state["state"],
        "current_phase": position and position["phase"],
        "position": position,
        "age_days": _r(state["age_days"], 3),
        "lead_time_days": _r(row["lead_time_days"], 3) if done else None,
        "status_basis": {
            "basis": THEORETICAL,
            "threshold_scope": state["threshold_scope"],
            "at_risk_days": _r(state["at_risk_days"], 3),
            "late_days": _r(state["late_days"], 3),
            "history": "orders finished by as_of",
        },
    }


_ORDER_SQL = """
SELECT o.id, o.product_id, p.name AS product_name, p.family AS product_family, o.created_at, o.finished_at,
       o.lead_time_days
FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
WHERE o.id = %s AND (o.created_at <= %s OR o.created_at IS NULL)
"""


# Counts of one order's phase rows as known at as_of (orders_op_order_seq_idx in each partition).
_ORDER_COUNTS_SQL = """
SELECT count(*) AS phases,
       count(*) FILTER (WHERE started_at <= %(as_of)s) AS phases_started,
       count(*) FILTER (WHERE ended_at <= %(as_of)s) AS phases_done,
       count(*) FILTER (WHERE is_rework AND started_at <= %(as_of)s) AS reworks,
       min(started_at) FILTER (WHERE started_at <= %(as_of)s) AS first_phase_started,
       max(ended_at) FILTER (WHERE ended_at <= %(as_of)s) AS last_phase_ended,
       (SELECT count(*) FROM quality_qualityerror e WHERE e.order_id = %(order_id)s) AS errors
FROM orders_orderphase WHERE order_id = %(order_id)s
"""


def order_detail(*, order_id: int, as_of: datetime) -> dict | None:
    """One order at as_of: state and position, status thresholds, counts of phases, reworks and errors (3 queries)."""
    found = fetch_prepared(_ORDER_SQL, (order_id, as_of))
    if not found:
        return None
    row = found[0]
    state = order_states(as_of=as_of, order_ids=[order_id]).get(order_id)
    payload = order_row_payload(row, state, as_of=as_of)
    counts = _fetch(_ORDER_COUNTS_SQL, {"order_id": order_id, "as_of": as_of})[0]
    payload["counts"] = {
        "phases": counts["phases"], "phases_started": counts["phases_started"], "phases_done": counts["phases_done"],
        "reworks": counts["reworks"], "errors": counts["errors"],
    }
    payload["first_phase_started"] = counts["first_phase_started"]
    payload["last_phase_ended"] = counts["last_phase_ended"]
    done = payload["state"] == OrderState.FINISHED
    late = state and state["late_days"]
    reference = row["lead_time_days"] if done else (state and state["age_days"])
    payload["age_vs_late_threshold"] = figure(
        _r(reference / late, 4) if reference is not None and late else None, basis=THEORETICAL, coverage=1.0 if late else 0.0
    )
    return payload


# The order list's sortable columns (?sort=<key>, or -<key> for descending).
ORDER_SORTS = ("age", "lead_time", "state", "phase")


def sorted_order_ids(*, as_of: datetime, queryset: QuerySet, sort: str) -> list[int]:
    """The ids of the queryset's orders sorted at as_of by sort (a key of ORDER_SORTS, '-' first for descending);
    orders without a value (a finished order's age, an open order's lead time, no phase) last, ties newest first.

    age and phase from the order state at as_of (the open orders' rows, cached per as_of; every other order of
    the queryset is finished), state in the order of OrderState, phase in route order; one query for the ids."""
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in ORDER_SORTS:
        raise ValueError(sort)
    open_rows = {r["order_id"]: r for r in open_orders_at(as_of=as_of)}
    state_rank = {state: i for i, state in enumerate(OrderState.values)}
    phase_rank = {pid: i for i, (pid, _name) in enumerate(phase_choices())}

    def value(order_id: int, lead_time: float | None):
        row = open_rows.get(order_id)
        if key == "age":
            return row and row["age_days"]
        if key == "lead_time":
            return None if row else lead_time
        if key == "state":
            return state_rank[row["state"] if row else OrderState.FINISHED]
        return phase_rank.get(row["phase_id"]) if row and row["phase_id"] is not None else None

    keyed = [(value(oid, lead), oid) for oid, lead in queryset.order_by().values_list("id", "lead_time_days")]
    present = sorted(((v, oid) for v, oid in keyed if v is not None),
                     key=lambda t: (-t[0] if descending else t[0], -t[1]))
    missing = sorted((oid for v, oid in keyed if v is None), reverse=True)
    return [oid for _v, oid in present] + missing


def order_rows_by_id(*, as_of: datetime, queryset: QuerySet, ids: list[int]) -> list[dict]:
    """order_rows() of these ids of the queryset, in the given order (one query for the rows, one for the states)."""
    found = {r["id"]: r for r in queryset.order_by().filter(id__in=ids).values(*ORDER_FIELDS)}
    return order_rows(as_of=as_of, rows=[found[i] for i in ids if i in found])


def order_tiles(*, as_of: datetime) -> dict:
    """Counts of open orders late, at risk and stalled at as_of (the order state; cached with it), each with the
    list filter that shows them."""
    from collections import Counter

    from orders.choices import OrderStatus

    rows = open_orders_at(as_of=as_of)  # state_summary's counts come from the same rows
    statuses = Counter(r["status"] for r in rows)
    states = Counter(r["state"] for r in rows)
    return {
        "late": {"count": statuses.get(OrderStatus.LATE, 0), "query": f"status={OrderStatus.LATE}"},
        "at_risk": {"count": statuses.get(OrderStatus.AT_RISK, 0), "query": f"status={OrderStatus.AT_RISK}"},
        "stalled": {"count": states.get(OrderState.STALLED, 0), "query": f"state={OrderState.STALLED}"},
    }


def order_ids_matching(q: str) -> Q:
    """Search by order id: exact id, or ids whose digits start with q."""
    q = q.strip()
    if not (q.isascii() and q.isdecimal()) or len(q) > 18:  # '²'.isdigit() is True but int('²') raises
        return Q(pk__in=[])
    return Q(id=int(q)) | Q(id_text__startswith=q)


def annotate_id_text(qs: QuerySet) -> QuerySet:
    return qs.annotate(id_text=Cast("id", CharField()))
