"""Post-ingestion cache warm-up: an app's @versioned_cache(warm=...) selectors computed at the data's as-of."""

from __future__ import annotations

from types import ModuleType

from prodplan.asof import data_as_of
from prodplan.cache import reread_data_version, warm_selectors, warmed_selectors


def warm_app_caches(selectors: ModuleType) -> list[str]:
    """Call every selector of the app owning this selectors module registered with warm=..., at the committed data's
    as-of; returns their cache names ([] before the first ingestion). UnknownCacheName when it registers none."""
    app_label = selectors.__name__.split(".")[0]
    warmed_selectors(app_label)  # fails loudly even on an empty system
    reread_data_version()  # a worker warming right after another process's ingestion committed
    as_of = data_as_of()
    if as_of is None:
        return []
    return warm_selectors(app_label, as_of=as_of)
