"""DRF throttles per IP (anonymous), per logged-in user and per API key, counted in fixed windows with one cache increment per request.

DRF's SimpleRateThrottle keeps, per client, the list of every request time in the window and reads and
rewrites that whole list on each request: at 3,000/min one client's list holds 3,000 floats, pickled
both ways per request (about 1 ms of CPU at the benchmark's rate, growing with the allowance). A counter
per (client, window) costs one INCR. The price is the usual fixed-window burst: up to twice the rate
across a window boundary.
"""

from __future__ import annotations

from redis.exceptions import RedisError
from rest_framework import throttling

from prodplan.models import ApiKey


def _redis_client(cache):
    """The raw redis-py client behind a django-redis cache, else None (in-process cache)."""
    client = getattr(cache, "client", None)
    get_client = getattr(client, "get_client", None)
    return get_client(write=True) if get_client else None


class FixedWindowMixin:
    """allow_request() on a counter per (cache key, window number); wait() is the time to the next window."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        count = self._increment(f"{self.key}:w{window}")
        self.wait_seconds = (window + 1) * self.duration - now
        return count <= self.num_requests

    def _increment(self, counter: str) -> int:
        # While the cache backend knows Redis is down, it counts in this process's memory (below) and the raw
        # client is not tried again on every request.
        redis = None if getattr(self.cache, "redis_down", False) else _redis_client(self.cache)
        if redis is not None:
            # A plain INCR (django-redis's incr() runs a Lua script to keep the TTL); the window's first sets it.
            key = self.cache.make_and_validate_key(counter)
            try:
                count = redis.incr(key)
                if count == 1:
                    redis.expire(key, self.duration + 1)
                return count
            except RedisError as exc:
                if not hasattr(self.cache, "redis_failed"):
                    return 0  # no fallback behind this cache: throttling fails open, the request is served
                self.cache.redis_failed(exc)
        try:
            return self.cache.incr(counter)
        except ValueError:  # first request of the window (or the counter expired)
            return 1 if self.cache.add(counter, 1, self.duration + 1) else self.cache.incr(counter)

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)


class AnonRateThrottle(FixedWindowMixin, throttling.AnonRateThrottle):
    """Anonymous requests, per client IP (settings: DEFAULT_THROTTLE_RATES['anon'])."""


class SessionRateThrottle(FixedWindowMixin, throttling.SimpleRateThrottle):
    """Requests of a logged-in user without an API key, per user (settings: DEFAULT_THROTTLE_RATES['session'])."""

    scope = "session"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if isinstance(request.auth, ApiKey) or user is None or not user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class ApiKeyRateThrottle(FixedWindowMixin, throttling.SimpleRateThrottle):
    """Requests with an API key, per key (settings: DEFAULT_THROTTLE_RATES['api_key'])."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return None
