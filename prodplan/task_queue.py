"""Handing work to Celery: a broker that cannot take a task raises QueueUnavailable, naming why."""

from __future__ import annotations

import logging

from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

logger = logging.getLogger("prodplan.tasks")

# A run recorded as pending that no worker has started within this window is taken as lost (its task went with a
# Redis restart, or no worker runs): ingestion fails it, what-if queues it again on an identical request.
PENDING_RUN_PICKUP_SECONDS = 300


class QueueUnavailable(Exception):
    """The task broker (Redis) could not take the task; nothing was queued. run_id: the job it was for, if any."""

    def __init__(self, message: str, *, run_id: int | None = None):
        super().__init__(message)
        self.run_id = run_id


def task_named(name: str):
    """The registered Celery task of this name, for a service that queues one of its app's tasks: tasks import
    services, never the reverse. A task named "<app>.<...>" is found in <app>.tasks (Celery's autodiscovery rule,
    applied to that one app); KeyError naming it when it does not exist."""
    from prodplan.celery import app

    if name not in app.tasks:
        app.autodiscover_tasks([name.split(".")[0]], force=True)
    try:
        return app.tasks[name]
    except KeyError:
        raise KeyError(f"no Celery task is named {name!r}") from None


def enqueue(task, *args, **kwargs):
    """task.delay(*args, **kwargs), or QueueUnavailable when the broker cannot be reached.

    Callers that recorded a pending job mark it failed with this reason, so that nothing waits for a task that
    was never queued."""
    try:
        return task.delay(*args, **kwargs)
    except (BrokerError, ConnectionError, OSError, RedisError) as exc:
        raise _unavailable(task, exc) from exc
    except RuntimeError as exc:
        # Celery's result consumer gives up on a lost Redis with a bare RuntimeError ("Retry limit exceeded
        # while trying to reconnect to the Celery result store backend").
        if "Celery" not in str(exc) and "result store" not in str(exc):
            raise
        raise _unavailable(task, exc) from exc


def _unavailable(task, exc: BaseException) -> QueueUnavailable:
    reason = " ".join(str(exc).split())
    logger.error("task queue unavailable", extra={"task": task.name, "error": reason})
    return QueueUnavailable(f"task queue unavailable: {reason}")


def enqueue_run(task, *, runs, run_id: int) -> None:
    """Queue task(run_id) for a run recorded as pending; when the broker cannot take it, the run (if still
    pending) is marked failed with the reason, and QueueUnavailable carrying run_id goes on up.

    runs: the run's queryset or manager, whose rows have status ("pending" / "failed"), error and finished_at."""
    from django.utils import timezone

    try:
        enqueue(task, run_id)
    except QueueUnavailable as exc:
        runs.filter(pk=run_id, status="pending").update(status="failed", error=str(exc), finished_at=timezone.now())
        raise QueueUnavailable(str(exc), run_id=run_id) from exc
