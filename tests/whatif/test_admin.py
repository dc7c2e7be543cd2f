"""Admin: what-if runs and backtests are browsable, read-only, with inputs, outputs and timings."""

from __future__ import annotations

import pytest

from tests.whatif.factory import AS_OF, build
from whatif.services import whatif_backtest_run

pytestmark = pytest.mark.django_db


def test_runs_and_backtests_in_admin(keyed_client, admin_client):
    build()
    run = keyed_client.post("/api/whatif/simulate", {"as_of": AS_OF.isoformat(), "horizon_days": 14},
                            format="json").json()
    bt = whatif_backtest_run(start=AS_OF, weeks=1, replications=1)
    listing = admin_client.get("/admin/whatif/whatifrun/")
    assert listing.status_code == 200 and f"/admin/whatif/whatifrun/{run['id']}/change/" in listing.content.decode()
    page = admin_client.get(f"/admin/whatif/whatifrun/{run['id']}/change/").content.decode()
    assert "simulate_ms" in page and "mean_queue_wait_days" in page and "priority_rule" in page
    assert admin_client.get("/admin/whatif/whatifrun/add/").status_code == 403
    assert admin_client.get(f"/admin/whatif/whatifbacktest/{bt.pk}/change/").status_code == 200
