"""A small synthetic factory with learnable structure (lead time grows with load; risk differs by product)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from orders.models import ManufacturingOrder, OrderPhase, Phase, Product, RouteStep
from quality.models import QualityError
from tests.conftest import FORGET_AS_OF

START = datetime(2024, 1, 8, 8, 0, tzinfo=UTC)
PHASES = [(10, "Moldagem"), (20, "Gelcoat"), (30, "Laminação"), (40, "Desmoldagem"), (50, "Acabamento")]
PRODUCTS = [  # id, family, base lead days, severe-defect rate, weight
    (1, "K1", 4.0, 0.10, 12.0), (2, "K1", 6.0, 0.15, 14.0), (3, "K2", 8.0, 0.30, 24.0),
    (4, "K2", 10.0, 0.40, 26.0), (5, "C1", 5.0, 0.55, 18.0), (6, "C2", 12.0, 0.70, 30.0),
]
UNKNOWN_PRODUCT = 999


def empty_domain_tables() -> None:
    """The session-wide `ingested` fixture commits demo rows: empty the domain tables inside this test's
    transaction (its rollback restores them), including the ingestion runs that define the data's as-of."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orders_product, orders_phase, orders_routestep, orders_manufacturingorder, "
                       "orders_orderphase, quality_qualityerror, ingestion_ingestionrun CASCADE")
        cursor.execute(FORGET_AS_OF)


def build_factory(*, seed: int = 3, n_orders: int = 360, days: int = 520) -> dict:
    """Orders arrive in waves; an order's lead time is its product's base time scaled by the number
    of orders open when it was created, plus noise. Returns {order_id: (created, finished, product)}."""
    empty_domain_tables()
    rng = random.Random(seed)
    as_of = START + timedelta(days=days - 6)
    Phase.objects.bulk_create([Phase(id=i, name=n, sequence=i) for i, n in PHASES])
    Product.objects.bulk_create([
        Product(id=pid, name=f"{fam} model {pid}", family=fam, demould_weight_kg=w, finished_weight_kg=w * 1.1,
                gelcoat_deck_qty=w / 10, gelcoat_hull_qty=w / 8)
        for pid, fam, _b, _r, w in PRODUCTS
    ])
    RouteStep.objects.bulk_create([
        RouteStep(product_id=pid, phase_id=phase_id, sequence=k, labour_coefficient=1.0 + k, machine_coefficient=0.5)
        for pid, *_ in PRODUCTS for k, (phase_id, _n) in enumerate(PHASES[: 3 + pid % 3])
    ])
    info = {p[0]: p for p in PRODUCTS}
    created_times = sorted(
        START + timedelta(days=rng.uniform(0, days - 6), hours=rng.uniform(0, 9)) for _ in range(n_orders)
    )
    orders, phases, errors, truth = [], [], [], {}
    op_id = 10_000
    finishes: list[datetime] = []
    for oid, created in enumerate(created_times, start=1):
        product = rng.choice([1, 2, 3, 4, 5, 6, UNKNOWN_PRODUCT])
        _pid, _fam, base, rate, _w = info.get(product, (0, "", 7.0, 0.35, 0))
        load = sum(1 for f in finishes if f is None or f > created)
        lead = base * (0.4 + load / 12.0) * rng.uniform(0.85, 1.15)
        finished = created + timedelta(days=lead)
        if finished > as_of:
            finished = None
        finishes.append(finished or datetime.max.replace(tzinfo=UTC))
        truth[oid] = (created, finished, product)
        route = [p for p, _ in PHASES[: 3 + product % 3]]
        span = lead / len(route)
        for k, phase_id in enumerate(route):
            started = created + timedelta(days=span * k)
            ended = started + timedelta(days=span * 0.9)
            if started > as_of:
                started = ended = None
            elif ended > as_of:
                ended = None
            op_id += 1
            phases.append(OrderPhase(
                id=op_id, order_id=oid, phase_id=phase_id, sequence=k, started_at=started, ended_at=ended,
                event_time=ended or started or created, is_open=started is not None and ended is None,
                is_done=ended is not None, duration_seconds=(ended - started).total_seconds() if ended else None))
        if finished is not None and rng.random() < rate * (0.6 + load / 30.0):
            errors.append(QualityError(order_id=oid, description="Bolha", found_phase_id=route[-1],
                                       severity=rng.choice([2, 3]), content_hash=f"h{oid}", occurrence=1,
                                       event_time=finished - timedelta(hours=1)))
        elif finished is not None and rng.random() < 0.3:
            errors.append(QualityError(order_id=oid, description="Risco", found_phase_id=route[0], severity=1,
                                       content_hash=f"m{oid}", occurrence=1, event_time=finished))
        orders.append(ManufacturingOrder(
            id=oid, created_at=created, finished_at=finished, product_id=product, is_open=finished is None,
            lead_time_days=(finished - created).total_seconds() / 86400 if finished else None))
    ManufacturingOrder.objects.bulk_create(orders)
    OrderPhase.objects.bulk_create(phases)
    QualityError.objects.bulk_create(errors)
    return truth


def weekday_signal(frame, seed: int = 5):
    """order_features rows with lead times driven by the weekday of creation (orders created from Thursday on wait
    over the weekend): a signal the baselines (product median, load) do not see and the candidates'
    created_weekday feature carries, so a candidate earns promotion under the evidence rule."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = frame.copy()
    late_week = (out["created_weekday"] >= 4).to_numpy(dtype=float)
    out["lead_time_days"] = 3.0 + 6.0 * late_week + rng.uniform(0.0, 1.0, len(out))
    return out
