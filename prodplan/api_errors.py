"""API error envelope: DRF's handler, with database and task-queue outages answered as 503; JSON 404/500 under /api/."""

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
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


def page_not_found(request, exception):
    """handler404: JSON for the API (its clients parse JSON), the site's page for people."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"Not found: no API endpoint at {request.path} (see /api/docs/)."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: JSON for the API, a static page for people (templates/500.html, no database needed)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error; it is logged with this response's X-Request-Id."}, status=500)
    return defaults.server_error(request)
