"""Rendered-response cache for the data-versioned API GETs: a hit skips DRF and JSON rendering.

Why: at 16 concurrent clients on 2 cores the p95 of the cached analytic endpoints was set by CPU per request
(about 5.7 ms: DRF dispatch, re-serialising the cached payload, JSON rendering), not by the database. A
view opts in with `response_cache = True` when its answer is a function of the request line and the data
version only, whoever asks (the analytic GETs: ingestion bumps the version, so entries die with the data
they were built from). The key holds the data version, scheme, host, path, sorted query, Accept and
Accept-Language, never the credentials.

Who may be served: factory data needs a login or an API key (prodplan.api_keys.ReadsFactoryData), so the
middleware sits after authentication and serves a hit only to a logged-in user or a valid X-API-Key (a key
is checked against the database at most every KEY_MEMO_SECONDS per process: a revoked key stops reading
cached answers within that time); anonymous requests go to DRF, which answers 401, unless
PRODPLAN_PUBLIC_READS opens reads. Hits pass the same throttles as DRF (per key, per user, per IP); a
throttled hit falls through to DRF, which answers the 429. Answers say `X-Cache: hit` or `X-Cache: miss`
(stored); uncacheable ones carry no such header.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.http import HttpResponse
from django.urls import Resolver404, resolve
from rest_framework.settings import api_settings

from prodplan.api_keys import ApiKeyClient
from prodplan.cache import data_version_memoised
from prodplan.metrics import RESPONSE_CACHE_EVENTS
from prodplan.middleware import database_unavailable_response, is_database_outage
from prodplan.models import ApiKey, hash_api_key

LOCAL_MAX_ENTRIES = 4096
LOCAL_MAX_BYTES = 64 * 1024 * 1024
MAX_BODY_BYTES = 2 * 1024 * 1024
KEY_MEMO_SECONDS = 10.0
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


class _ThrottleShim:
    """What a DRF throttle reads of a request (META, headers, user, auth), for throttling a hit before DRF exists."""

    def __init__(self, request, user, auth) -> None:
        self.META = request.META
        self.headers = request.headers
        self.user = user
        self.auth = auth


def _throttle_allows(request, user, auth) -> bool:
    shim = _ThrottleShim(request, user, auth)
    return all(throttle().allow_request(shim, None) for throttle in api_settings.DEFAULT_THROTTLE_CLASSES)


_valid_keys: dict[str, tuple[float, object]] = {}
_valid_keys_lock = threading.Lock()


def _api_key(raw: str):
    """The ApiKey row of a raw X-API-Key (memoised KEY_MEMO_SECONDS), or None when unknown or revoked."""
    digest = hash_api_key(raw.strip())
    now = time.monotonic()
    with _valid_keys_lock:
        memo = _valid_keys.get(digest)
    if memo is not None and memo[0] > now:
        return memo[1]
    api_key = ApiKey.objects.filter(key_hash=digest, revoked_at__isnull=True).first()
    with _valid_keys_lock:
        if len(_valid_keys) > 1024:
            _valid_keys.clear()
        _valid_keys[digest] = (now + KEY_MEMO_SECONDS, api_key)
    return api_key


def _reader(request):
    """(user, auth) of a request that may read cached factory data, else None (DRF answers it)."""
    raw_key = request.META.get("HTTP_X_API_KEY")
    if raw_key:
        api_key = _api_key(raw_key)
        return (ApiKeyClient(api_key), api_key) if api_key is not None else None
    if request.META.get("HTTP_AUTHORIZATION"):
        return None  # a scheme this cache does not check: the full path decides
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user, None
    if getattr(settings, "PUBLIC_READS", False):
        return AnonymousUser(), None
    return None


@functools.lru_cache(maxsize=8192)
def _view_opts_in(path: str) -> bool:
    """Whether the view behind path says response_cache = True and keeps the default throttles and permission
    (a view that asks more of its reader than a login or a key is never answered from this cache)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    throttles = getattr(view_class, "throttle_classes", None)
    permissions = getattr(view_class, "permission_classes", None)
    return bool(getattr(view_class, "response_cache", False)) and (
        throttles is None or list(throttles) == list(api_settings.DEFAULT_THROTTLE_CLASSES)
    ) and (permissions is None or list(permissions) == list(api_settings.DEFAULT_PERMISSION_CLASSES))


class ResponseCacheMiddleware:
    """Serve and fill the rendered-response cache; placed after authentication (it serves only allowed readers)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            key = self._key(request)
            reader = _reader(request) if key is not None else None
        except Exception as exc:  # the data version, a key or a session read: an outage is the 503, not a 500
            if not is_database_outage(exc):
                raise
            return database_unavailable_response(request)
        if key is None or reader is None:
            return self.get_response(request)
        entry = LOCAL.get(key)
        level = "local"
        if entry is None:
            entry = cache.get(key)
            level = "shared"
            if entry is not None:
                LOCAL.put(key, entry)
        if entry is not None and _throttle_allows(request, *reader):
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
