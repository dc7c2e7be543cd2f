"""Single-instance guard for Celery tasks: a PostgreSQL advisory lock named after the task."""

from __future__ import annotations

import functools
import hashlib
import logging

from django.db import connection

from prodplan.metrics import TASK_FAILURES

logger = logging.getLogger("prodplan.tasks")


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)


def single_instance(func):
    """Skip (return {"status": "skipped"}) when another worker is running the same task; count failures."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        key = _lock_key(f"task:{func.__module__}.{func.__name__}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = cursor.fetchone()[0]
        if not acquired:
            logger.info("task skipped: another copy is running", extra={"task": func.__name__})
            return {"status": "skipped", "detail": f"{func.__name__} is already running"}
        try:
            return func(*args, **kwargs)
        except Exception:
            TASK_FAILURES.labels(task=func.__name__).inc()
            raise
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])

    return wrapper
