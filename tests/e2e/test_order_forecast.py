"""An open order's page in a real browser (#19): the remaining standard-route steps drawn as forecast bars, the
predicted finish marked, at desktop width and at 390 px (the Gantt scrolls sideways)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_supervisor_sees_an_open_orders_forecast_bars(web, loaded):
    from orders.models import ManufacturingOrder

    web.login()
    page = web.page
    as_of = loaded["as_of"]
    candidates = (ManufacturingOrder.objects.filter(created_at__lte=as_of).exclude(finished_at__lte=as_of)
                  .order_by("-created_at").values_list("id", flat=True))
    found = None
    for oid in candidates:
        web.goto(f"/orders/{oid}/")
        if page.locator("svg#gantt rect.forecast").count():
            found = oid
            break
    assert found, "no open order of the demo data has a remaining standard-route step"
    bars = page.locator("svg#gantt rect.forecast")
    assert bars.first.is_visible() and page.locator("svg#gantt line.eta-finish").count() == 1
    assert page.locator("#forecast-note").is_visible()
    web.shot("order-forecast")
    page.set_viewport_size({"width": 390, "height": 844})
    web.goto(f"/orders/{found}/")
    assert page.locator("svg#gantt rect.forecast").count() == bars.count()
    web.shot("order-forecast-390")
    assert not web.js_errors, web.js_errors
