"""API error envelope: DRF's handler, with database and task-queue outages answered as 503; JSON 400/404/500 under
/api/; the site's 400 page for an invalid ?as_of= on a page."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from prodplan.asof import InvalidAsOf
from prodplan.params import InvalidParam
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
    if isinstance(exc, InvalidAsOf | InvalidParam):  # prodplan.asof.resolve_as_of in an API view: 400 naming it
        return Response({exc.param: [exc.message()]}, status=400)
    return drf_exception_handler(exc, context)


def bad_request(request, exception):
    """handler400: an invalid ?as_of= (or a page's ?after=/?run= id, prodplan.params) names the parameter (JSON under
    /api/, the site's page or, for an HTMX widget, a panel for people); a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a
    JSON 413 under /api/; any other bad request keeps Django's plain 400."""
    if isinstance(exception, InvalidAsOf | InvalidParam):
        if request.path.startswith("/api/"):
            return JsonResponse({exception.param: [exception.message()]}, status=400)
        template = "partials/_bad_request.html" if getattr(request, "htmx", False) else "400.html"
        return render(request, template, {"param": exception.param, "message": exception.localized_message()},
                      status=400)
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):  # over DATA_UPLOAD_MAX_MEMORY_SIZE: 413, as JSON
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return JsonResponse({"detail": f"Request body too large: the limit is {limit} bytes"
                                           f" ({limit // (1024 * 1024)} MB) of form or JSON data."}, status=413)
        return JsonResponse({"detail": "Bad request."}, status=400)
    # Django's own plain page: templates/400.html needs the request's context, which defaults.bad_request omits
    return HttpResponseBadRequest(defaults.ERROR_PAGE_TEMPLATE % {"title": "Bad Request (400)", "details": ""})


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
