"""Quality's subscriptions to the kernel's signals: after every ingestion commits, warm the quality analytics."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver

from prodplan.signals import data_changed
from quality.tasks import warm_quality_cache_task


@receiver(data_changed, dispatch_uid="quality.data_changed")
def warm_cache_when_data_changed(sender, *, warm_cache: bool, **kwargs) -> None:
    """No aggregate tables to refresh: queue the cache warm-up for when the new data is committed."""
    if warm_cache:
        transaction.on_commit(warm_quality_cache_task.delay, robust=True)
