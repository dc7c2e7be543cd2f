"""SmartInventory writes: after each ingestion, warm the cache of the inventory analytics."""

from __future__ import annotations

from inventory import selectors
from prodplan.warmup import warm_app_caches


def inventory_cache_warm() -> list[str]:
    """Compute and cache the default inventory analytics (the selectors marked warm=..., the gelcoat use by month
    and by week) at the data's as-of; returns their cache names."""
    return warm_app_caches(selectors)
