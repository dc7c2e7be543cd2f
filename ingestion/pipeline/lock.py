"""The ingestion lock: one run at a time, through a PostgreSQL advisory lock that dies with its session."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun

ADVISORY_LOCK_KEY = 74_210_001


def try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


def lock_is_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            [ADVISORY_LOCK_KEY],
        )
        return bool(cursor.fetchone()[0])


def fail_interrupted_runs(*, exclude: int | None) -> None:
    """We hold the lock, so any run still marked running died mid-way (killed process): say so."""
    stale = IngestionRun.objects.filter(status=RunStatus.RUNNING)
    if exclude:
        stale = stale.exclude(pk=exclude)
    stale.update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="interrupted: the process running it stopped before committing; no data was changed",
    )
