"""Release-gate checks on Django's system-check framework (a registry of their own, tag "prodplan").

The kernel's own checks (PostgreSQL, migrations, benchmark goals) are here; the domain apps register theirs on
release_checks from AppConfig.ready() (orders.checks: partitions, feature gates; ingestion.checks: last run)."""

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
