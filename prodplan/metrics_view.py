"""/metrics for Prometheus: answered to the allow-listed networks or to a bearer token, 404 to anyone else."""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import Http404
from django_prometheus.exports import ExportToDjangoView


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _from_allowed_network(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def _has_token(request) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def metrics(request):
    """Prometheus exposition; the socket address is used (not X-Forwarded-For), so a header cannot open it."""
    if not (_from_allowed_network(request) or _has_token(request)):
        raise Http404
    return ExportToDjangoView(request)
