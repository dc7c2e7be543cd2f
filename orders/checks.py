"""Release-gate checks of the orders domain (prodplan.checks.release_checks): partitions and feature gates."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Info

from orders.partitioning import partition_health
from orders.selectors import employee_match_rate
from prodplan.checks import TAG, release_checks


@release_checks.register(TAG)
def check_partitions(app_configs=None, **kwargs):
    health = partition_health()
    problems = []
    if health["missing_ahead"]:
        problems.append(Error(
            f"order-phase partitions missing for the next months: {', '.join(health['missing_ahead'])}",
            hint="Run: manage.py pgpartition --yes (Celery beat does it nightly)", id="prodplan.E020",
        ))
    if health["missing_for_stored_months"]:
        problems.append(Error(
            f"stored months without their own partition (rows sit in the default partition): {', '.join(health['missing_for_stored_months'][:12])}",
            hint="Re-ingest the workbook (ingestion creates the months it needs) after detaching the default partition's rows.",
            id="prodplan.E021",
        ))
    if not health["has_default"]:
        problems.append(Error("the order-phase default partition is missing", hint="Run: manage.py migrate", id="prodplan.E022"))
    return problems


@release_checks.register(TAG)
def check_feature_gates(app_configs=None, **kwargs):
    """Which data-dependent features the current data supports (information, never a blocker)."""
    messages = []
    rate = employee_match_rate()["rate"]
    rate = 1.0 if rate is None else rate  # no assignments: nothing unmatched
    gate = settings.EMPLOYEE_MATCH_RATE_GATE
    state = "supported" if rate >= gate else "NOT_SUPPORTED_BY_DATA"
    messages.append(Info(f"per-employee KPIs: {state} (assignment→phase match {rate:.1%}, gate {gate:.0%})", id="prodplan.I040"))
    return messages
