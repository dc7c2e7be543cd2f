"""API error envelope: DRF's handler, with database outages answered as 503."""

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


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
    return drf_exception_handler(exc, context)
