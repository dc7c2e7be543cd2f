"""The orders domain's subscriptions to the kernel's signals: rebuild the aggregates with every ingestion."""

from __future__ import annotations

from django.dispatch import receiver

from orders.services import refresh_aggregates
from prodplan.signals import data_changed


@receiver(data_changed, dispatch_uid="orders.data_changed")
def refresh_aggregates_when_data_changed(sender, *, warm_cache: bool, **kwargs) -> None:
    """Inside the run's transaction: the aggregate tables commit with the data; the warm-up follows the commit."""
    refresh_aggregates(warm_cache=warm_cache)
