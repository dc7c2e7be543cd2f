"""Quality writes: after each ingestion, warm the cache of the quality analytics (no aggregate tables needed)."""

from __future__ import annotations

from prodplan.warmup import warm_app_caches
from quality import selectors


def quality_cache_warm() -> list[str]:
    """Compute and cache the default quality analytics (the selectors marked warm=...) at the data's as-of; returns
    their cache names."""
    return warm_app_caches(selectors)
