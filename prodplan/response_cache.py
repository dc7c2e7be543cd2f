"""Rendered-response cache for anonymous GETs of the data-versioned API views: a hit skips DRF and JSON rendering.

Why: at 16 concurrent clients on 2 cores the p95 of the cached analytic endpoints was set by CPU per request
(about 5.7 ms: DRF dispatch, re-serialising the cached payload, JSON rendering), not by the database. A
view opts in with `response_cache = True` when its answer is a function of the request line and the data
version only (the analytic GETs: ingestion bumps the version, so entries die with the data they were built
from). The key holds the data version, scheme, host, path, sorted query, Accept and Accept-Language.

Two levels: a small LRU of the response bytes in this process (no network), then the shared cache (Redis
when configured), so one worker's miss is every worker's hit. Requests carrying credentials (X-API-Key,
Authorization, a session cookie) always take the full path: their answers may depend on who asks. Hits
still pass the anonymous per-IP throttle; a throttled hit falls through to DRF, which answers the 429.
Answers say `X-Cache: hit` or `X-Cache: miss` (stored); uncacheable ones carry no such header.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from rest_framework.settings import api_settings

from prodplan.cache import data_version_memoised
from prodplan.metrics import RESPONSE_CACHE_EVENTS
from prodplan.middleware import database_unavailable_response, is_database_outage

LOCAL_MAX_ENTRIES = 4096
LOCAL_MAX_BYTES = 64 * 1024 * 1024
MAX_BODY_BYTES = 2 * 1024 * 1024
CREDENTIAL_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY")
STORED_HEADERS = ("Content-Type", "Vary", "Allow", "X-Frame-Options", "Content-Language", "Referrer-Policy",
                  "X-Content-Type-Options", "Cross-Origin-Opener-Policy")


class _LocalResponses:
    """Thread-safe LRU of (body, headers) bounded by entry count and total bytes, for one data version.

    Entries of an older version can never be hit again (the version is in every key): the first
    lookup under a new version drops them all, instead of letting them age out of the LRU."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, tuple[bytes, tuple]] = OrderedDict()
        self.size = 0
        self.version: int | None = None

    def follow(self, version: int) -> None:
        if version != self.version:
            self._reset(version)

    def get(self, key: str):
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: tuple[bytes, tuple]) -> None:
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old[0])
            self.entries[key] = entry
            self.size += len(entry[0])
            while self.entries and (len(self.entries) > LOCAL_MAX_ENTRIES or self.size > LOCAL_MAX_BYTES):
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped[0])

    def clear(self) -> None:
        self._reset(None)

    def _reset(self, version: int | None) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0
            self.version = version


LOCAL = _LocalResponses()


class _AnonymousShim:
    """What a DRF throttle reads of a request (META, headers, user, auth), for throttling a hit before DRF exists."""

    user = AnonymousUser()
    auth = None

    def __init__(self, request) -> None:
        self.META = request.META
        self.headers = request.headers


def _throttle_allows(request) -> bool:
    shim = _AnonymousShim(request)
    return all(throttle().allow_request(shim, None) for throttle in api_settings.DEFAULT_THROTTLE_CLASSES)


@functools.lru_cache(maxsize=8192)
def _view_opts_in(path: str) -> bool:
    """Whether the view behind path says response_cache = True and keeps the default throttles."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    throttles = getattr(view_class, "throttle_classes", None)
    return bool(getattr(view_class, "response_cache", False)) and (
        throttles is None or list(throttles) == list(api_settings.DEFAULT_THROTTLE_CLASSES)
    )


class ResponseCacheMiddleware:
    """Serve and fill the rendered-response cache; placed after CORS and security, before sessions."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            key = self._key(request)
        except Exception as exc:  # the key reads the data version: a database outage must be the 503, not a 500
            if not is_database_outage(exc):
                raise
            return database_unavailable_response(request)
        if key is None:
            return self.get_response(request)
        entry = LOCAL.get(key)
        level = "local"
        if entry is None:
            entry = cache.get(key)
            level = "shared"
            if entry is not None:
                LOCAL.put(key, entry)
        if entry is not None and _throttle_allows(request):
            RESPONSE_CACHE_EVENTS.labels(outcome=f"hit_{level}").inc()
            body, headers = entry
            response = HttpResponse(body if request.method == "GET" else b"", headers=dict(headers))
            response["Content-Length"] = str(len(body))
            response["X-Cache"] = "hit"
            return response
        response = self.get_response(request)
        if self._storable(request, response):
            entry = (response.content, tuple((name, response[name]) for name in STORED_HEADERS if name in response))
            LOCAL.put(key, entry)
            cache.set(key, entry, settings.CACHE_TTL_SECONDS)
            RESPONSE_CACHE_EVENTS.labels(outcome="stored").inc()
            response["X-Cache"] = "miss"
        else:
            RESPONSE_CACHE_EVENTS.labels(outcome="bypass").inc()
        return response

    @staticmethod
    def _key(request) -> str | None:
        if request.method not in ("GET", "HEAD") or not request.path.startswith("/api/"):
            return None
        if not getattr(settings, "CACHE_ENABLED", True) or not getattr(settings, "RESPONSE_CACHE_ENABLED", True):
            return None
        if not _view_opts_in(request.path_info):
            return None
        meta = request.META
        if any(meta.get(name) for name in CREDENTIAL_HEADERS) or settings.SESSION_COOKIE_NAME in request.COOKIES:
            return None
        query = "&".join(sorted(meta.get("QUERY_STRING", "").split("&")))
        raw = "\n".join((
            request.scheme, meta.get("HTTP_HOST", ""), request.path, query,
            meta.get("HTTP_ACCEPT", ""), meta.get("HTTP_ACCEPT_LANGUAGE", ""),
        ))
        digest = hashlib.blake2b(raw.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
        version = data_version_memoised()
        LOCAL.follow(version)
        return f"prodplan:v{version}:response:{digest}"

    @staticmethod
    def _storable(request, response) -> bool:
        return (
            request.method == "GET"
            and response.status_code == 200
            and not response.streaming
            and not response.cookies
            and "application/json" in response.get("Content-Type", "")
            and len(response.content) <= MAX_BODY_BYTES
        )
