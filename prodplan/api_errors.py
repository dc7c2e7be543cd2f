"""API error envelope: DRF's handler, with database and task-queue outages answered as 503."""

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from prodplan.task_queue import QueueUnavailable


def exception_handler(exc, context):
    if isinstance(exc, OperationalError | InterfaceError):
        from django.db import connections

        for conn in connections.all(initialized_only=True):
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        return Response(
            {"status": "unavailable", "component": "database", "detail": "The database is unavailable; retry shortly."},
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, QueueUnavailable):
        return Response(
            {"status": "unavailable", "component": "task queue", "detail": f"{exc}; nothing was queued, retry shortly."},
            status=503,
            headers={"Retry-After": "5"},
        )
    return drf_exception_handler(exc, context)
