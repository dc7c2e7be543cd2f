"""A small constructed factory for what-if tests: phases, two products with routes, history, WIP."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection

from orders.models import ManufacturingOrder, OrderPhase, Phase, Product, RouteStep
from tests.conftest import FORGET_AS_OF

AS_OF = datetime(2025, 12, 15, 12, 0, tzinfo=ZoneInfo("Europe/Lisbon"))
D = timedelta(days=1)


def phase_row(pid, order_id, phase_id, seq, start=None, end=None, created=None, rework=False):
    event = end or start or created
    return OrderPhase(
        id=pid, order_id=order_id, phase_id=phase_id, sequence=seq, started_at=start, ended_at=end,
        is_rework=rework, event_time=event,
        duration_seconds=(end - start).total_seconds() if start and end else None,
        is_open=bool(start and not end), is_done=bool(end),
    )


def order(oid, product, created, finished=None):
    return ManufacturingOrder(id=oid, product_id=product, created_at=created, finished_at=finished,
                              is_open=finished is None,
                              lead_time_days=(finished - created).total_seconds() / 86400 if finished else None)


def empty_domain_tables() -> None:
    """The session's ingested demo data is committed: empty the tables inside this test's transaction."""
    with connection.cursor() as cur:
        cur.execute("TRUNCATE orders_phase, orders_product, orders_routestep, orders_manufacturingorder, "
                    "orders_orderphase, ingestion_ingestionrun CASCADE")
        cur.execute(FORGET_AS_OF)


def build() -> dict:
    """History: 20 finished K1 orders (phases 1-4, half a day each, one after another) and 6 finished
    orders of an unknown product 999 (phases 1,3,4). WIP at AS_OF: 5001 (K1, phase 2 in service for
    half a day), 5002 (K2, nothing started), 5003 (unknown product, phase 1 done), 5004 (K1, phases
    1-3 done, finished two days after AS_OF). Order 5005 is created three days after AS_OF."""
    empty_domain_tables()
    Phase.objects.bulk_create([Phase(id=i, name=n, sequence=i) for i, n in
                               [(1, "moulding"), (2, "gelcoat"), (3, "lamination"), (4, "packing")]])
    Product.objects.bulk_create([Product(id=100, name="K1 Sprint", family="K1"), Product(id=200, name="K2 Tour", family="K2")])
    RouteStep.objects.bulk_create([RouteStep(product_id=100, phase_id=p, sequence=i) for i, p in enumerate([1, 2, 3, 4], 1)]
                                  + [RouteStep(product_id=200, phase_id=p, sequence=i) for i, p in enumerate([1, 2, 4], 1)])
    orders, phases = [], []
    pid = 1
    for k in range(26):
        created = AS_OF - 60 * D + 2 * k * D
        product, route = (100, [1, 2, 3, 4]) if k < 20 else (999, [1, 3, 4])
        t = created
        for seq, ph in enumerate(route, 1):
            phases.append(phase_row(pid, k + 1, ph, seq, t, t + D / 2))
            pid += 1
            t += D / 2
        orders.append(order(k + 1, product, created, finished=t))
    orders += [order(5001, 100, AS_OF - 5 * D), order(5002, 200, AS_OF - D), order(5003, 999, AS_OF - 3 * D),
               order(5004, 100, AS_OF - 4 * D, finished=AS_OF + 2 * D), order(5005, 200, AS_OF + 3 * D)]
    phases += [
        phase_row(9001, 5001, 1, 1, AS_OF - 4 * D, AS_OF - 3 * D),
        phase_row(9002, 5001, 2, 2, AS_OF - D / 2, None),
        phase_row(9003, 5001, 3, 3, None, None, created=AS_OF - 5 * D),
        phase_row(9004, 5002, 1, 1, None, None, created=AS_OF - D),
        phase_row(9005, 5003, 1, 1, AS_OF - 2 * D, AS_OF - D),
        phase_row(9006, 5004, 1, 1, AS_OF - 4 * D, AS_OF - 3.5 * D),
        phase_row(9007, 5004, 2, 2, AS_OF - 3 * D, AS_OF - 2.5 * D),
        phase_row(9008, 5004, 3, 3, AS_OF - 2 * D, AS_OF - 1.5 * D),
        phase_row(9009, 5004, 4, 4, AS_OF + D, AS_OF + 2 * D),
    ]
    ManufacturingOrder.objects.bulk_create(orders)
    OrderPhase.objects.bulk_create(phases)
    return {"as_of": AS_OF}
