"""The shared cache: django-redis, with this process's own memory standing in while Redis cannot be reached."""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from prodplan import metrics

logger = logging.getLogger("prodplan.cache")

# After a failure, Redis is tried again this many seconds later; meanwhile every operation goes local at once
# (a Redis that drops packets would otherwise cost its connect timeout on every cache call).
RETRY_REDIS_AFTER_SECONDS = 5.0
LOCAL_MAX_ENTRIES = 2000


class RedisWithLocalFallback(RedisCache):
    """django-redis; while Redis is unreachable, a per-process LocMemCache answers instead (throttle counters too).

    Cache keys carry the data version (read from PostgreSQL when the cache has none), so a local entry is
    as correct as a shared one, only not shared: answers stay right and fast after the first request per
    process, instead of every request recomputing its analytics. /api/health reports the cache failing."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self.local = LocMemCache(
            "prodplan-redis-fallback",
            {"TIMEOUT": params.get("TIMEOUT", 300), "KEY_PREFIX": params.get("KEY_PREFIX", ""),
             "OPTIONS": {"MAX_ENTRIES": LOCAL_MAX_ENTRIES}},
        )
        self._redis_down_until = 0.0

    @property
    def redis_down(self) -> bool:
        return time.monotonic() < self._redis_down_until

    def redis_failed(self, exc: Exception) -> None:
        """Redis just failed (here or for a caller using the raw client): go local for a while."""
        logger.error("redis unreachable: caching in this process for %ss", RETRY_REDIS_AFTER_SECONDS,
                     extra={"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__})
        metrics.CACHE_FALLBACKS.inc()
        self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS

    def _either(self, name: str, *args, **kwargs):
        if not self.redis_down:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except (ConnectionInterrupted, RedisError) as exc:
                self.redis_failed(exc)
        return getattr(self.local, name)(*args, **kwargs)

    def get(self, key, default=None, version=None, **kwargs):
        return self._either("get", key, default=default, version=version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, **kwargs):
        return self._either("set", key, value, timeout=timeout, version=version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, **kwargs):
        return self._either("add", key, value, timeout=timeout, version=version)

    def delete(self, key, version=None, **kwargs):
        return self._either("delete", key, version=version)

    def get_many(self, keys, version=None, **kwargs):
        return self._either("get_many", keys, version=version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, **kwargs):
        return self._either("set_many", data, timeout=timeout, version=version)

    def delete_many(self, keys, version=None, **kwargs):
        return self._either("delete_many", keys, version=version)

    def incr(self, key, delta=1, version=None, **kwargs):
        return self._either("incr", key, delta=delta, version=version)

    def has_key(self, key, version=None, **kwargs):
        return self._either("has_key", key, version=version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None, **kwargs):
        return self._either("touch", key, timeout=timeout, version=version)

    def clear(self):
        self.local.clear()
        return self._either("clear")
