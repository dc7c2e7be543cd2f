"""Fixtures of the orders tests: the synthetic factory, and its rows as pandas frames."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.orders.builders import AS_OF, build_factory


@pytest.fixture
def factory(db) -> dict:
    return build_factory()


@pytest.fixture
def frames(factory) -> dict:
    """The stored rows, read back plainly (the independent side of every comparison)."""
    from orders.models import ManufacturingOrder, OrderPhase, PhaseAssignment, Product

    orders = pd.DataFrame(list(ManufacturingOrder.objects.values()))
    phases = pd.DataFrame(list(OrderPhase.objects.values()))
    products = pd.DataFrame(list(Product.objects.values("id", "family")))
    assignments = pd.DataFrame(list(PhaseAssignment.objects.values("order_phase_id", "employee_id", "is_leader")))
    return {"orders": orders, "phases": phases, "products": products, "assignments": assignments, "as_of": AS_OF}
