"""Release-gate checks on Django's system-check framework (a registry of their own, tag "prodplan")."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Info, Warning
from django.core.checks.registry import CheckRegistry
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# Kept apart from Django's default registry so migrate/runserver never block on data checks.
release_checks = CheckRegistry()
TAG = "prodplan"


@release_checks.register(TAG)
def check_postgres_version(app_configs=None, **kwargs):
    try:
        version = connection.pg_version
    except Exception as exc:  # noqa: BLE001
        return [Error(f"database unreachable: {exc}", hint="Start PostgreSQL or fix DATABASE_URL.", id="prodplan.E001")]
    if version < 150000:
        return [Error(f"PostgreSQL {version // 10000} is too old", hint="Upgrade to PostgreSQL 15 or newer.", id="prodplan.E002")]
    return [Info(f"PostgreSQL {version // 10000}.{version % 10000}", id="prodplan.I001")]


@release_checks.register(TAG)
def check_migrations_applied(app_configs=None, **kwargs):
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        return [Error(f"{len(plan)} migration(s) not applied: {names}", hint="Run: manage.py migrate", id="prodplan.E010")]
    return []


@release_checks.register(TAG)
def check_partitions(app_configs=None, **kwargs):
    from prodplan.partitioning import partition_health

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
def check_last_ingestion(app_configs=None, **kwargs):
    from ingestion.choices import RunStatus
    from ingestion.models import IngestionRun

    last = IngestionRun.objects.exclude(status__in=[RunStatus.NOOP, RunStatus.PENDING]).order_by("-id").first()
    if last is None:
        return [Error("no workbook has been ingested", hint="Run: manage.py ingest PATH/Folha_IA.xlsx", id="prodplan.E030")]
    if last.status != RunStatus.SUCCEEDED:
        return [Error(f"the last ingestion (run {last.pk}) {last.status}: {last.error[:300]}",
                      hint="Fix the workbook or the cause named, then ingest again.", id="prodplan.E031")]
    unreconciled = list(last.sheets.filter(reconciled=False).values_list("sheet", flat=True))
    if unreconciled:
        return [Error(f"run {last.pk}: counts not reconciled for {', '.join(unreconciled)}",
                      hint="Ingest again; if it persists, report the workbook.", id="prodplan.E032")]
    return [Info(f"last ingestion: run {last.pk}, as of {last.as_of:%Y-%m-%d %H:%M}", id="prodplan.I030")]


@release_checks.register(TAG)
def check_feature_gates(app_configs=None, **kwargs):
    """Which data-dependent features the current data supports (information, never a blocker)."""
    from orders.selectors import employee_match_rate

    messages = []
    rate = employee_match_rate()["rate"]
    rate = 1.0 if rate is None else rate  # no assignments: nothing unmatched
    gate = settings.EMPLOYEE_MATCH_RATE_GATE
    state = "supported" if rate >= gate else "NOT_SUPPORTED_BY_DATA"
    messages.append(Info(f"per-employee KPIs: {state} (assignment→phase match {rate:.1%}, gate {gate:.0%})", id="prodplan.I040"))
    return messages


@release_checks.register(TAG)
def check_benchmarks(app_configs=None, **kwargs):
    problems = []
    for path in sorted(Path(settings.BENCH_RESULTS_DIR).glob("*.json")):
        try:
            figures = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problems.append(Warning(f"{path.name} is unreadable: {exc}", id="prodplan.W050"))
            continue
        missed = [goal for goal, met in (figures.get("met") or {}).items() if met is False]
        if missed:
            problems.append(Error(f"benchmark {path.name} misses its goal(s): {', '.join(missed)}",
                                  hint=f"Run the benchmark again (python bench/{path.stem}.py) and fix the regression.",
                                  id="prodplan.E050"))
    return problems
