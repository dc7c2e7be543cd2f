"""The backtest: WIP of a past date plus the real arrivals, simulated, against the real weekly completions."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command, get_commands

from tests.whatif.factory import build
from whatif.models import WhatIfBacktest
from whatif.selectors import latest_backtest

pytestmark = pytest.mark.django_db


def test_backtest_command_on_constructed_data():
    build()
    out = StringIO()
    call_command("whatif_backtest", "--start", "2025-12-15", "--weeks", "1", "--replications", "3", stdout=out)
    report = json.loads(out.getvalue())
    bt = WhatIfBacktest.objects.get()
    assert latest_backtest() == bt
    assert report["backtest_id"] == bt.pk and bt.weeks == 1
    # from 2025-12-15 00:00 Lisbon: WIP 5001-5004 (5004 finishes on the 17th, the only real completion)
    assert bt.actual_weekly == [1]
    assert report["wip_orders"] == 4 and report["real_arrivals"] == 1
    assert bt.mape == round(abs(bt.simulated_weekly[0] - 1) / 1, 4)
    assert bt.details["replications"] == 3


@pytest.mark.skipif("make_demo_workbook" not in get_commands(), reason="the demo generator has not landed yet")
def test_backtest_on_the_generated_demo_data(ingested):
    start = ingested["as_of"] - timedelta(weeks=8)
    out = StringIO()
    call_command("whatif_backtest", "--weeks", "8", stdout=out)
    report = json.loads(out.getvalue())
    bt = WhatIfBacktest.objects.get(pk=report["backtest_id"])
    assert abs((bt.start - start).total_seconds()) < 1
    assert len(bt.actual_weekly) == len(bt.simulated_weekly) == 8
    # the real weekly completions, recomputed from the ORM
    from orders.models import ManufacturingOrder

    expected = [0] * 8
    for f in ManufacturingOrder.objects.filter(finished_at__gt=start, finished_at__lte=start + timedelta(weeks=8)) \
            .values_list("finished_at", flat=True):
        expected[min(7, int((f - start).total_seconds() // (7 * 86400)))] += 1
    assert bt.actual_weekly == expected
    # the scale-0.005 demo has ~one order a fortnight: too few completions for a meaningful error figure
    # (the 15% goal is measured at scale 1.0, see the report); the real arrivals are the orders created then
    created = ManufacturingOrder.objects.filter(created_at__gt=start, created_at__lte=start + timedelta(weeks=8))
    assert report["real_arrivals"] == created.count()
    assert bt.details["model"]["as_of"] == start.isoformat()
