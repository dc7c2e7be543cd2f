"""SmartInventory writes: after each ingestion, warm the cache of the inventory analytics."""

from __future__ import annotations

from django.db import transaction


def refresh_aggregates() -> None:
    """Called inside the ingestion transaction: queue the cache warm-up for when the new data is committed."""
    from inventory.tasks import warm_inventory_cache_task

    transaction.on_commit(warm_inventory_cache_task.delay, robust=True)


def inventory_cache_warm() -> list[str]:
    """Compute and cache the default inventory analytics at the data's as-of; returns their names."""
    from django.core.cache import cache

    from inventory import selectors
    from prodplan.asof import data_as_of
    from prodplan.cache import VERSION_KEY, cached

    cache.delete(VERSION_KEY)  # re-read the committed data version from the database
    as_of = data_as_of()
    if as_of is None:
        return []
    key = as_of.isoformat()
    # Same names and params as inventory.api.views, so that the API's first hit is a cache hit.
    jobs = {
        "inventory.wip": ({"as_of": key}, lambda: selectors.wip(as_of=as_of)),
        "inventory.wip_mass": ({"as_of": key}, lambda: selectors.wip_mass(as_of=as_of)),
        "inventory.gelcoat_theoretical_usage": (
            {"as_of": key, "period": "month"},
            lambda: selectors.gelcoat_theoretical_usage(as_of=as_of, period="month")),
        "inventory.gelcoat_theoretical_usage:week": (
            {"as_of": key, "period": "week"},
            lambda: selectors.gelcoat_theoretical_usage(as_of=as_of, period="week")),
    }
    for name, (params, compute) in jobs.items():
        cached(name.split(":")[0], params, compute)
    return list(jobs)
