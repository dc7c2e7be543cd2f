"""Quality writes: after each ingestion, warm the cache of the quality analytics (no aggregate tables needed)."""

from __future__ import annotations

from django.db import transaction


def refresh_aggregates(*, warm_cache: bool = True) -> None:
    """Called inside the ingestion transaction: queue the cache warm-up for when the new data is committed."""
    if not warm_cache:
        return
    from quality.tasks import warm_quality_cache_task

    transaction.on_commit(warm_quality_cache_task.delay, robust=True)


def quality_cache_warm() -> list[str]:
    """Compute and cache the default (parameterless) quality analytics at the data's as-of; returns their names."""
    from prodplan.cache import warm_cached
    from quality import selectors

    # Same names and params as quality.api.views, so that the API's first hit is a cache hit.
    jobs = {
        "quality.overview": ({"top": 20}, lambda as_of: selectors.quality_overview(as_of=as_of, top=20)),
        "quality.by_phase": ({}, lambda as_of: selectors.quality_by_phase(as_of=as_of)),
        "quality.by_product": ({}, lambda as_of: selectors.quality_by_product(as_of=as_of)),
        "quality.heatmap": ({}, lambda as_of: selectors.quality_heatmap(as_of=as_of)),
        "quality.escapes": ({}, lambda as_of: selectors.quality_escapes(as_of=as_of)),
    }
    return warm_cached(jobs)

