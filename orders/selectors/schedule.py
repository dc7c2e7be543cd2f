"""WIP and the schedule at as_of, per phase, from the order state."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from orders.choices import OrderState, PlacementBasis
from orders.maths import age_buckets
from orders.selectors.common import DAY, _r, phase_names
from orders.selectors.state import (
    ACTIVE_STATES,
    ORDER_STATE_RULE,
    open_orders_at,
    stalled_block,
    state_summary,
)
from prodplan.cache import versioned_cache
from prodplan.gates import (
    OBSERVED,
    ratio,
)
from prodplan.stats import percentile


def _ages(items: list[dict], as_of: datetime) -> list[float]:
    return [(as_of - r["created_at"]).total_seconds() / DAY for r in items if r["created_at"] is not None]


@versioned_cache("orders.schedule_current", warm=True)
def schedule_current(*, as_of: datetime) -> dict:
    """WIP at as_of per phase from the order state: not started, waiting, in progress; stalled orders apart."""
    names = phase_names()
    summary = state_summary(as_of=as_of)
    rows = open_orders_at(as_of=as_of)
    active = [r for r in rows if r["state"] in ACTIVE_STATES]
    per_phase: dict = defaultdict(list)
    for r in active:
        per_phase[r["phase_id"]].append(r)
    stalled_per_phase = Counter(r["phase_id"] for r in rows if r["state"] == OrderState.STALLED)
    phases = []
    for phase_id, items in per_phase.items():
        ages = _ages(items, as_of)
        oldest = sorted(items, key=lambda r: (r["created_at"] is None, r["created_at"], r["order_id"]))[:5]
        phases.append({
            "phase": None if phase_id is None else {"id": phase_id, "name": names.get(phase_id)},
            "wip": len(items),
            "not_started": sum(1 for r in items if r["state"] == OrderState.NOT_STARTED),
            "waiting": sum(1 for r in items if r["state"] == OrderState.WAITING),
            "in_progress": sum(1 for r in items if r["state"] == OrderState.IN_PROGRESS),
            "stalled": stalled_per_phase.get(phase_id, 0),
            "age_days": {
                "p50": _r(percentile(ages, 0.5), 3), "p90": _r(percentile(ages, 0.9), 3),
                "max": _r(max(ages), 3) if ages else None, "buckets": age_buckets(ages),
            },
            "oldest_orders": [
                {"order_id": r["order_id"], "age_days": _r(r["age_days"], 3), "state": r["state"],
                 "in_state_days": _r((as_of - r["since"]).total_seconds() / DAY, 3) if r["since"] else None}
                for r in oldest
            ],
        })
    phases.sort(key=lambda x: (-x["wip"], x["phase"] is None, (x["phase"] or {}).get("id") or 0))
    placed = sum(1 for r in active if r["placement_basis"] != PlacementBasis.UNKNOWN)
    return {
        "as_of": as_of,
        "rule": ORDER_STATE_RULE,
        "states": summary["states"],
        "open_orders": len(rows),
        "active_orders": len(active),
        "positioned_orders": placed,
        "coverage": _r(ratio(placed, len(active)), 4),
        "placement": summary["placement"],
        "basis": OBSERVED,
        "phases": phases,
        "stalled": stalled_block(as_of=as_of, limit=20),
        "abandoned": summary["states"][OrderState.ABANDONED],
    }
