"""Fixtures of the orders tests: the synthetic factory, and its rows as pandas frames."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.orders.builders import AS_OF, build_factory


@pytest.fixture
def factory(db) -> dict:
    return build_factory()


def read_frames() -> dict:
    """The stored rows, read back plainly (the independent side of every comparison)."""
    from orders.models import ManufacturingOrder, OrderPhase, PhaseAssignment, Product, RouteStep
    from quality.models import QualityError

    return {
        "orders": pd.DataFrame(list(ManufacturingOrder.objects.values())),
        "phases": pd.DataFrame(list(OrderPhase.objects.values())),
        "products": pd.DataFrame(list(Product.objects.values("id", "family"))),
        "assignments": pd.DataFrame(list(PhaseAssignment.objects.values("order_phase_id", "employee_id", "is_leader"))),
        "routes": pd.DataFrame(list(RouteStep.objects.values("product_id", "phase_id", "sequence"))),
        "errors": pd.DataFrame(list(QualityError.objects.values("order_id", "event_time")), columns=["order_id", "event_time"]),
        "as_of": AS_OF,
    }


@pytest.fixture
def frames(factory) -> dict:
    return read_frames()
