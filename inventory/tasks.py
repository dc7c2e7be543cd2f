"""Celery tasks of SmartInventory: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="inventory.warm_cache")
def warm_inventory_cache_task() -> list[str]:
    """Warm the cached inventory analytics for the current data version (idempotent)."""
    from inventory.services import inventory_cache_warm

    return inventory_cache_warm()
