"""Quality writes: after each ingestion, warm the cache of the quality analytics (no aggregate tables needed)."""

from __future__ import annotations

from django.db import transaction


def refresh_aggregates() -> None:
    """Called inside the ingestion transaction: queue the cache warm-up for when the new data is committed."""
    from quality.tasks import warm_quality_cache_task

    transaction.on_commit(warm_quality_cache_task.delay, robust=True)


def quality_cache_warm() -> list[str]:
    """Compute and cache the default (parameterless) quality analytics at the data's as-of; returns their names."""
    from django.core.cache import cache

    from prodplan.asof import data_as_of
    from prodplan.cache import VERSION_KEY, cached
    from quality import selectors

    cache.delete(VERSION_KEY)  # re-read the committed data version from the database
    as_of = data_as_of()
    if as_of is None:
        return []
    key = as_of.isoformat()
    # Same names and params as quality.api.views, so that the API's first hit is a cache hit.
    jobs = {
        "quality.overview": ({"as_of": key, "top": 20}, lambda: selectors.quality_overview(as_of=as_of, top=20)),
        "quality.by_phase": ({"as_of": key}, lambda: selectors.quality_by_phase(as_of=as_of)),
        "quality.by_product": ({"as_of": key}, lambda: selectors.quality_by_product(as_of=as_of)),
        "quality.heatmap": ({"as_of": key}, lambda: selectors.quality_heatmap(as_of=as_of)),
        "quality.escapes": ({"as_of": key}, lambda: selectors.quality_escapes(as_of=as_of)),
    }
    for name, (params, compute) in jobs.items():
        cached(name, params, compute)
    return list(jobs)
