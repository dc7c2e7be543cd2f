"""A small deterministic factory built with the ORM (bulk_create), and the rows read back for independent checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from orders.models import ManufacturingOrder, OrderPhase, Phase, Product
from quality.models import QualityError

AS_OF = datetime(2025, 12, 15, 18, 0, tzinfo=UTC)

PHASES = [  # id, name, sequence
    (10, "Moldagem", 10),
    (20, "Gelcoat Casco", 20),
    (21, "Gel-Coat Deck", 21),
    (30, "Laminação", 30),
    (40, "Desmoldagem", 40),
    (50, "Acabamento", 50),
    (60, "Inspeção Final", 60),
]
PRODUCTS = [  # id, name, family, demould, finished, deck, hull
    (1, "K1 Sprint", "K1", 10.0, 12.0, 1.5, 2.0),
    (2, "K2 Touring", "K2", 20.0, 24.5, 2.5, 3.0),
    (3, "C1 Canoe", "C1", 15.0, None, 1.0, None),
    (4, "K1 Junior", "K1", 8.0, 9.0, 1.0, 1.25),
]
UNKNOWN_PRODUCT = 999
DESCRIPTIONS = ["Bolha", "Risco", "Fissura", "Falta de gelcoat", "Delaminação"]


DOMAIN_TABLES = ("orders_phase", "orders_product", "orders_manufacturingorder", "orders_orderphase",
                 "quality_qualityerror")


def truncate_domain_tables() -> None:
    """Empty the domain tables inside the test's transaction (rolled back after it): the session-wide
    `ingested` fixture may have committed a workbook's rows into them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(DOMAIN_TABLES))


def build_factory(*, seed: int = 7, n_orders: int = 120) -> None:
    """Catalogue, orders (some open, some of an unknown product), their phases and errors."""
    rng = random.Random(seed)
    truncate_domain_tables()
    Phase.objects.bulk_create([Phase(id=i, name=n, sequence=s) for i, n, s in PHASES])
    Product.objects.bulk_create([
        Product(id=i, name=n, family=f, demould_weight_kg=dw, finished_weight_kg=fw,
                gelcoat_deck_qty=gd, gelcoat_hull_qty=gh)
        for i, n, f, dw, fw, gd, gh in PRODUCTS
    ])
    orders, phases, errors = [], [], []
    op_id = 1000
    start = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    for oid in range(1, n_orders + 1):
        product = rng.choice([1, 1, 2, 2, 3, 4, UNKNOWN_PRODUCT])
        created = start + timedelta(days=rng.randint(0, 330), hours=rng.randint(0, 10))
        route = list(PHASES)
        if rng.random() < 0.2:
            route = [p for p in route if p[0] != 21]
        # how many phases ended; the next one may be in progress
        if created > AS_OF - timedelta(days=20) or rng.random() < 0.25:
            done = rng.randint(0, len(route) - 1)
        else:
            done = len(route)
        t = created + timedelta(hours=rng.randint(1, 30))
        order_phases = []
        for idx, (pid, _n, seq) in enumerate(route):
            if idx < done:
                started, ended = t, t + timedelta(hours=rng.randint(0, 20))
                t = ended + timedelta(hours=rng.randint(1, 48))
            elif idx == done and rng.random() < 0.6:
                started, ended = t, None
            else:
                started = ended = None
            op_id += 1
            event_time = ended or started or created
            order_phases.append(dict(id=op_id, order_id=oid, phase_id=pid, sequence=seq, started_at=started,
                                     ended_at=ended, event_time=event_time, is_done=ended is not None,
                                     is_open=started is not None and ended is None,
                                     is_rework=False, weight_kg=rng.choice([None, 5.0, 7.5]),
                                     duration_seconds=(ended - started).total_seconds() if ended else None))
        finished = order_phases[-1]["ended_at"] if done == len(route) else None
        orders.append(ManufacturingOrder(
            id=oid, created_at=created, finished_at=finished, product_id=product,
            current_phase_id=route[min(done, len(route) - 1)][0], is_open=finished is None,
            lead_time_days=(finished - created).total_seconds() / 86400 if finished else None,
        ))
        phases.extend(order_phases)
        ended_phases = [p for p in order_phases if p["ended_at"] is not None]
        for occurrence in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            if not ended_phases:
                break
            found = rng.choice(ended_phases)
            earlier = [p for p in ended_phases if p["sequence"] <= found["sequence"]]
            culprit = rng.choice(earlier) if rng.random() < 0.6 else None
            event_time = found["event_time"] or (culprit or {}).get("event_time") or created
            errors.append(QualityError(
                order_id=oid, description=rng.choice(DESCRIPTIONS), found_phase_id=found["phase_id"],
                severity=rng.choice([1, 1, 1, 2, 2, 3]), found_order_phase_id=found["id"],
                culprit_order_phase_id=culprit["id"] if culprit else None,
                content_hash=f"h{oid}-{occurrence}", occurrence=1, event_time=event_time,
            ))
    # one error on an order that does not exist, and one whose culprit points at no order phase
    errors.append(QualityError(order_id=5000, description="Bolha", found_phase_id=60, severity=2,
                               found_order_phase_id=None, culprit_order_phase_id=None, content_hash="orphan",
                               occurrence=1, event_time=datetime(2025, 3, 3, tzinfo=UTC)))
    errors.append(QualityError(order_id=1, description="Risco", found_phase_id=60, severity=3,
                               found_order_phase_id=None, culprit_order_phase_id=999999, content_hash="dangling",
                               occurrence=1, event_time=datetime(2025, 3, 4, tzinfo=UTC)))
    ManufacturingOrder.objects.bulk_create(orders)
    OrderPhase.objects.bulk_create([OrderPhase(**p) for p in phases])
    QualityError.objects.bulk_create(errors)


def load_rows() -> dict:
    """Every stored row, read through the ORM, for computations independent of the selectors' SQL."""
    return {
        "phases": {p["id"]: p for p in Phase.objects.values()},
        "products": {p["id"]: p for p in Product.objects.values()},
        "orders": list(ManufacturingOrder.objects.values()),
        "order_phases": list(OrderPhase.objects.values()),
        "errors": list(QualityError.objects.values()),
    }
