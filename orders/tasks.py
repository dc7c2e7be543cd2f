"""Celery tasks of the orders domain: thin, idempotent wrappers around services."""

from __future__ import annotations

from celery import shared_task

from prodplan.task_guard import single_instance


@shared_task(name="orders.refresh_aggregates", autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
@single_instance
def refresh_aggregates_task() -> str:
    """Rebuild the orders aggregate tables (idempotent: a full rebuild in one transaction)."""
    from orders.services import refresh_aggregates

    refresh_aggregates()
    return "ok"


@shared_task(name="orders.maintain_partitions", autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
@single_instance
def maintain_partitions_task() -> str:
    """Create missing monthly order-phase partitions (never deletes; safe to repeat)."""
    from django.core.management import call_command

    call_command("pgpartition", "--yes")
    return "ok"


@shared_task(name="orders.warm_cache")
@single_instance
def warm_orders_cache_task() -> list[str]:
    """Warm the overview's cached analytics for the current data version (idempotent)."""
    from orders.services import orders_cache_warm

    return orders_cache_warm()
