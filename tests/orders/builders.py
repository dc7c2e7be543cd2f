"""A small synthetic factory built with the ORM (bulk_create), with known quirks, for orders tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from orders.models import (
    Employee,
    ManufacturingOrder,
    OrderPhase,
    Phase,
    PhaseAssignment,
    Product,
    RouteStep,
)

AS_OF = datetime(2025, 12, 15, 18, 0, tzinfo=UTC)
PHASES = {1: "Moulding", 2: "Gelcoat", 3: "Lamination", 4: "Demoulding", 5: "Finishing", 6: "Inspection"}
PRODUCTS = {101: ("K1 Sprint", "K1", [1, 2, 3, 4, 5, 6]), 102: ("K2 Tour", "K2", [1, 2, 3, 4, 5]),
            103: ("K2 Race", "K2", [1, 2, 3, 5, 6]), 104: ("C1 Classic", "C1", [1, 3, 5])}
ORPHAN_PRODUCT = 999
MEAN_HOURS = {1: 6, 2: 3, 3: 20, 4: 2, 5: 10, 6: 1}


def build_factory(*, seed: int = 7, n_orders: int = 160, match_rate: float = 0.3, as_of: datetime = AS_OF) -> dict:
    """Orders over the 300 days before as_of, phases along the product route with skips, extras and
    rework loops, assignments of which about `match_rate` point at real order phases."""
    rng = random.Random(seed)
    Phase.objects.bulk_create([Phase(id=i, name=n, sequence=i) for i, n in PHASES.items()])
    Product.objects.bulk_create([Product(id=i, name=n, family=f) for i, (n, f, _) in PRODUCTS.items()])
    RouteStep.objects.bulk_create([RouteStep(product_id=pid, phase_id=ph, sequence=k + 1)
                                   for pid, (_, _, route) in PRODUCTS.items() for k, ph in enumerate(route)])
    Employee.objects.bulk_create([Employee(id=e, name=f"Person {e}") for e in range(1, 13)])
    weights = {101: 0.53, 102: 0.25, 103: 0.04, 104: 0.03, ORPHAN_PRODUCT: 0.15}
    orders, phases = [], []
    phase_id_seq = 5000
    for oid in range(1, n_orders + 1):
        pid = rng.choices(list(weights), weights=list(weights.values()))[0]
        route = list(PRODUCTS.get(pid, ("", "", [1, 2, 3, 5]))[2])
        if rng.random() < 0.1 and len(route) > 3:
            route.pop(rng.randrange(1, len(route)))  # skipped step
        if rng.random() < 0.08:
            route.insert(rng.randrange(1, len(route)), 4 if 4 not in route else 2)  # extra or repeated step
        rework_at = rng.randrange(1, len(route)) if rng.random() < 0.15 else None
        created = as_of - timedelta(days=rng.uniform(0, 300), hours=rng.uniform(0, 5))
        t = created + timedelta(hours=rng.uniform(1, 48))
        rows = []
        steps = [(ph, False) for ph in route]
        if rework_at is not None:
            steps.insert(rework_at + 1, (route[rework_at], True))
        slow = rng.random() < 0.2
        stall_after = rng.randrange(0, len(steps)) if rng.random() < 0.1 else None
        for seq, (ph, rework) in enumerate(steps, start=1):
            hours = rng.expovariate(1 / MEAN_HOURS[ph]) * (4 if slow else 1)
            start, end = t, t + timedelta(hours=hours)
            t = end + timedelta(hours=rng.expovariate(1 / 30))
            if rng.random() < 0.05:
                end = start  # zero-duration event marker
            rows.append([ph, seq, start, end, rework])
        finished = t if t <= as_of else None
        phase_rows = []
        for ph, seq, start, end, rework in rows:
            if stall_after is not None and seq > stall_after:
                start = end = as_of + timedelta(days=1)  # never started: the order is stuck
            if start > as_of:
                start = end = None
            elif end > as_of:
                end = None
            phase_id_seq += 1
            event = end or start or created
            phase_rows.append(OrderPhase(
                id=phase_id_seq, order_id=oid, phase_id=ph, sequence=seq, started_at=start, ended_at=end,
                planned_at=start if start and rng.random() < 0.05 else None, is_rework=rework,
                shift=rng.choice([1, 2, 3]), event_time=event,
                duration_seconds=(end - start).total_seconds() if start and end else None,
                is_open=bool(start and not end), is_done=bool(end),
            ))
        if finished is not None and any(p.ended_at is None for p in phase_rows):
            finished = None
        phases.extend(phase_rows)
        orders.append(ManufacturingOrder(
            id=oid, product_id=pid, created_at=created, finished_at=finished,
            current_phase_id=None if finished else next((p.phase_id for p in phase_rows if not p.ended_at), None),
            is_open=finished is None,
            lead_time_days=(finished - created).total_seconds() / 86400 if finished else None,
        ))
    ManufacturingOrder.objects.bulk_create(orders)
    OrderPhase.objects.bulk_create(phases)
    assignments = []
    unmatched_id = 10**9
    for p in phases:
        if p.started_at is None:
            continue
        for emp in rng.sample(range(1, 13), rng.randint(1, 3)):
            if rng.random() < match_rate:
                target = p.id
            else:
                unmatched_id += 1
                target = unmatched_id
            assignments.append(PhaseAssignment(order_phase_id=target, employee_id=emp, is_leader=rng.random() < 0.3))
    PhaseAssignment.objects.bulk_create(assignments)
    _add_errors(rng, orders, phases)
    from orders.services import refresh_aggregates

    refresh_aggregates()
    return {"as_of": as_of, "orders": len(orders), "phases": len(phases), "assignments": len(assignments)}


def _add_errors(rng: random.Random, orders, phases) -> None:
    from quality.models import QualityError

    by_order = {}
    for p in phases:
        by_order.setdefault(p.order_id, []).append(p)
    errors = []
    for o in orders:
        if rng.random() < (0.5 if o.product_id == 102 else 0.15):
            for k in range(rng.randint(1, 2)):
                ph = rng.choice(by_order[o.id])
                errors.append(QualityError(order_id=o.id, severity=rng.choice([1, 2, 3]), found_phase_id=ph.phase_id,
                                           found_order_phase_id=ph.id, content_hash=f"{o.id}-{k}", occurrence=1,
                                           event_time=ph.event_time))
    QualityError.objects.bulk_create(errors)


# Hand-made orders at as_of, one per state and placement basis the random factory rarely shows: id -> what
# ORDER_STATE_RULE says of each at as_of (the ERP's phase counts only with the snapshot taken at as_of).
STATE_EXAMPLES = {
    9001: {"state": "not_started", "phase_id": 1, "placement_basis": "next_phase_row"},
    9002: {"state": "in_progress", "phase_id": 2, "placement_basis": "phase_in_progress"},
    9003: {"state": "waiting", "phase_id": 3, "placement_basis": "route_next_step"},
    9004: {"state": "waiting", "phase_id": 5, "placement_basis": "erp_current_phase"},
    9008: {"state": "waiting", "placement_basis": "observed_next_phase"},
    9005: {"state": "abandoned", "phase_id": 2, "placement_basis": "phase_in_progress"},
    9007: {"state": "in_progress", "phase_id": 1, "placement_basis": "phase_in_progress"},
}
CREATED_AFTER_AS_OF = 9006
PACKING = 7  # a phase outside every route, that only order 9004 reaches


def add_state_examples(*, as_of: datetime = AS_OF, snapshot: bool = True) -> dict:
    """Add the STATE_EXAMPLES orders (and one created after as_of), mark 9005 abandoned, and record an ingestion
    snapshot at as_of when asked; then refresh the aggregates."""
    from ingestion.models import IngestionRun
    from orders.services import order_abandon, refresh_aggregates

    h = timedelta(hours=1)
    d = timedelta(days=1)
    later = as_of + 2 * h
    orders = [  # id, product, created, finished, ERP current phase
        (9001, 101, as_of - 2 * d, None, 1), (9002, 101, as_of - 3 * d, None, 2), (9003, 101, as_of - 2 * d, None, 3),
        (9004, ORPHAN_PRODUCT, as_of - 2 * d, None, 5), (9005, 102, as_of - 3 * d, None, 2),
        (9006, 101, as_of + d, None, None), (9007, 104, as_of - 3 * d, later, None),
        (9008, ORPHAN_PRODUCT, as_of - 2 * d, None, 5),
    ]
    rows = [  # id, order, phase, sequence, start, end (an end after as_of was not known at as_of)
        (9901, 9001, 1, 1, None, None), (9902, 9001, 2, 2, None, None), (9903, 9001, 3, 3, None, None),
        (9911, 9002, 1, 1, as_of - 3 * d + h, as_of - 2 * d), (9912, 9002, 2, 2, as_of - d, None),
        (9913, 9002, 3, 3, None, None),
        (9921, 9003, 1, 1, as_of - 2 * d + h, as_of - 2 * d + 3 * h), (9922, 9003, 2, 2, as_of - 2 * d + 5 * h, as_of - d),
        (9931, 9004, PACKING, 1, as_of - 2 * d + h, as_of - d),  # no order ever went on after this phase
        (9981, 9008, 1, 1, as_of - 2 * d + h, as_of - d),  # no route: what most often followed phase 1
        (9941, 9005, 1, 1, as_of - 3 * d + h, as_of - 2 * d), (9942, 9005, 2, 2, as_of - d, None),
        (9951, 9006, 1, 1, None, None),
        (9971, 9007, 1, 1, as_of - 2 * d, as_of + h), (9972, 9007, 3, 2, None, None),
    ]
    Phase.objects.create(id=PACKING, name="Packing", sequence=PACKING)
    created = {oid: c for oid, _, c, _, _ in orders}
    ManufacturingOrder.objects.bulk_create([
        ManufacturingOrder(id=oid, product_id=pid, created_at=c, finished_at=f, current_phase_id=cur, is_open=f is None,
                           lead_time_days=(f - c).total_seconds() / 86400 if f else None)
        for oid, pid, c, f, cur in orders])
    OrderPhase.objects.bulk_create([
        OrderPhase(id=rid, order_id=oid, phase_id=ph, sequence=seq, started_at=s, ended_at=e, is_rework=False, shift=1,
                   event_time=e or s or created[oid], duration_seconds=(e - s).total_seconds() if s and e else None,
                   is_open=bool(s and not e), is_done=bool(e))
        for rid, oid, ph, seq, s, e in rows])
    if snapshot:
        IngestionRun.objects.create(file_name="synthetic.xlsx", status="succeeded", as_of=as_of)
    order_abandon(order_id=9005, marked_by="steward", reason="customer cancelled")
    refresh_aggregates(warm_cache=False)
    return {"abandoned": {9005}, "snapshot_at": as_of if snapshot else None}
