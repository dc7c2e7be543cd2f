"""Celery tasks of the quality domain: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="quality.warm_cache")
def warm_quality_cache_task() -> list[str]:
    """Warm the cached quality analytics for the current data version (idempotent)."""
    from quality.services import quality_cache_warm

    return quality_cache_warm()
