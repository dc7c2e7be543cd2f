"""Versioned cache: every ingestion bumps one global version, and concurrent misses compute once."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from prodplan.metrics import CACHE_EVENTS

logger = logging.getLogger(__name__)

VERSION_KEY = "prodplan:data_version"
LOCK_WAIT_SECONDS = 10.0
VERSION_TTL_SECONDS = 5


_version_memo: dict = {"version": None, "until": 0.0}
VERSION_MEMO_SECONDS = 1.0


def data_version_memoised() -> int:
    """data_version(), re-read at most once a second per process (for the per-request response cache key).

    An ingestion in this process resets the memo on commit; another process's is seen within a second
    of the shared version key (which itself lives VERSION_TTL_SECONDS)."""
    now = time.monotonic()
    if _version_memo["version"] is None or now >= _version_memo["until"]:
        _version_memo["version"] = data_version()
        _version_memo["until"] = now + VERSION_MEMO_SECONDS
    return _version_memo["version"]


def forget_data_version() -> None:
    """Drop this process's memo of the data version and the values memoised for it (the next request re-reads)."""
    _version_memo["version"] = None
    _in_process.clear()


_in_process: dict[str, tuple[int, Any]] = {}


def cached_in_process(name: str, compute: Callable[[], Any]) -> Any:
    """cached(name, {}, compute), also kept in this process's memory for the current data version.

    For the small reference values read on every request (the data's as-of, thresholds, phase names):
    a shared-cache round trip and unpickling per request cost more than the lookup they save."""
    if not getattr(settings, "CACHE_ENABLED", True):
        return compute()
    version = data_version_memoised()
    hit = _in_process.get(name)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = cached(name, {}, compute)
    _in_process[name] = (version, value)
    return value


def _learn_version(version: int) -> None:
    cache.set(VERSION_KEY, version, VERSION_TTL_SECONDS)
    forget_data_version()


def data_version() -> int:
    """The current global data version (cache first, the database row as the source of truth)."""
    version = cache.get(VERSION_KEY)
    if version is None:
        from prodplan.models import DataVersion

        row = DataVersion.objects.filter(pk=1).values_list("version", flat=True).first()
        version = row or 1
        # Short-lived: a process whose cache is its own (no Redis) still sees another process's ingestion.
        cache.set(VERSION_KEY, version, VERSION_TTL_SECONDS)
    return int(version)


def bump_data_version() -> int:
    """Increment the version inside the caller's transaction; the cache learns it on commit."""
    from django.db.models import F

    from prodplan.models import DataVersion

    DataVersion.objects.get_or_create(pk=1)
    DataVersion.objects.filter(pk=1).update(version=F("version") + 1)
    version = DataVersion.objects.values_list("version", flat=True).get(pk=1)
    transaction.on_commit(lambda: _learn_version(version))
    return version


def cache_key(name: str, params: dict | None = None) -> str:
    digest = hashlib.sha1(json.dumps(params or {}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"prodplan:v{data_version_memoised()}:{name}:{digest}"


def cached(name: str, params: dict | None, compute: Callable[[], Any], ttl: int | None = None) -> Any:
    """Return the cached value for (name, params) at the current data version, computing it once."""
    if not getattr(settings, "CACHE_ENABLED", True):
        return compute()
    key = cache_key(name, params)
    value = cache.get(key)
    if value is not None:
        CACHE_EVENTS.labels(name=name, outcome="hit").inc()
        return value
    CACHE_EVENTS.labels(name=name, outcome="miss").inc()
    lock_key = key + ":lock"
    if cache.add(lock_key, 1, timeout=int(LOCK_WAIT_SECONDS * 3)):
        try:
            value = compute()
            cache.set(key, value, ttl or settings.CACHE_TTL_SECONDS)
            return value
        finally:
            cache.delete(lock_key)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.02)
        value = cache.get(key)
        if value is not None:
            CACHE_EVENTS.labels(name=name, outcome="waited").inc()
            return value
    logger.warning("cache lock wait timed out; computing", extra={"cache_name": name})
    return compute()


def warm_cached(jobs: dict[str, tuple[dict, Callable]]) -> list[str]:
    """Fill cache entries at the data's as-of, with the names and params the API views use.

    jobs: cache name (a ":suffix" tells apart variants of one name) -> (params besides as_of, compute(as_of)).
    Called after an ingestion commits."""
    from prodplan.asof import data_as_of

    cache.delete(VERSION_KEY)  # re-read the committed data version from the database
    forget_data_version()
    as_of = data_as_of()
    if as_of is None:
        return []
    for name, (params, compute) in jobs.items():
        cached(name.split(":")[0], {"as_of": as_of.isoformat(), **params}, lambda compute=compute: compute(as_of))
    return list(jobs)
