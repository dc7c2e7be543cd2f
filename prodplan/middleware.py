"""Request-id propagation and a clean 503 when the database is unreachable."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import JsonResponse

from prodplan.logging import new_request_id, set_request_id

logger = logging.getLogger("prodplan.request")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if incoming.isascii() and 8 <= len(incoming) <= 64 else new_request_id()
        request.request_id = request_id
        set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            set_request_id(None)  # the thread serves other work next: don't let this id leak into it
        response["X-Request-Id"] = request_id
        return response


def is_database_outage(exception: BaseException) -> bool:
    """A lost or refused database connection (not a bad query)."""
    return isinstance(exception, OperationalError | InterfaceError) or (
        isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
    )


def database_unavailable_response(request) -> JsonResponse:
    """The documented 503 with Retry-After; the broken connections are dropped so the next request reconnects."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is already broken
            pass
    logger.warning("database unavailable", extra={"path": request.path})
    return JsonResponse(
        {"status": "unavailable", "component": "database", "detail": "The database is unavailable; retry shortly."},
        status=503,
        headers={"Retry-After": "5"},
    )


class DatabaseUnavailableMiddleware:
    """A lost database connection in a view answers 503 and is dropped, so the next request reconnects."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return database_unavailable_response(request) if is_database_outage(exception) else None
