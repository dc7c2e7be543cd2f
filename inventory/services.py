"""SmartInventory writes: after each ingestion, warm the cache of the inventory analytics."""

from __future__ import annotations

from django.db import transaction


def refresh_aggregates(*, warm_cache: bool = True) -> None:
    """Called inside the ingestion transaction: queue the cache warm-up for when the new data is committed."""
    if not warm_cache:
        return
    from inventory.tasks import warm_inventory_cache_task

    transaction.on_commit(warm_inventory_cache_task.delay, robust=True)


def inventory_cache_warm() -> list[str]:
    """Compute and cache the default inventory analytics at the data's as-of; returns their names."""
    from inventory import selectors
    from prodplan.cache import warm_cached

    # Same names and params as inventory.api.views, so that the API's first hit is a cache hit.
    jobs = {
        "inventory.wip": ({}, lambda as_of: selectors.wip(as_of=as_of)),
        "inventory.wip_mass": ({}, lambda as_of: selectors.wip_mass(as_of=as_of)),
        "inventory.gelcoat_theoretical_usage": (
            {"period": "month"},
            lambda as_of: selectors.gelcoat_theoretical_usage(as_of=as_of, period="month")),
        "inventory.gelcoat_theoretical_usage:week": (
            {"period": "week"},
            lambda as_of: selectors.gelcoat_theoretical_usage(as_of=as_of, period="week")),
    }
    return warm_cached(jobs)

