"""Versioned cache: every ingestion bumps one global version, and concurrent misses compute once.

A selector opts in with @versioned_cache("app.name"): the key is built from that registered name, the
selector's arguments (defaults applied) and the data version, so a view, a page and a warm-up calling the
selector share one entry and no key is ever typed twice. The registry of decorated selectors lets the
post-ingestion warm-ups iterate over names that exist (warm_selectors); an unknown name raises."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
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
    return _cached_in_process(name, {}, compute)


def _cached_in_process(name: str, params: dict, compute: Callable[[], Any]) -> Any:
    if not getattr(settings, "CACHE_ENABLED", True):
        return compute()
    version = data_version_memoised()
    memo = name + json.dumps(params, sort_keys=True, default=_plain) if params else name
    hit = _in_process.get(memo)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = cached(name, params, compute)
    _in_process[memo] = (version, value)
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


def _plain(value: Any) -> Any:
    """A key parameter as JSON: dates and datetimes in ISO 8601, numpy scalars as Python ones, else str()."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def cache_key(name: str, params: dict | None = None) -> str:
    digest = hashlib.sha1(json.dumps(params or {}, sort_keys=True, default=_plain).encode()).hexdigest()[:16]
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


class UnknownCacheName(LookupError):
    """A cache name (or an app's set of warmed selectors) that no @versioned_cache selector registered."""


_SELECTORS: dict[str, Callable] = {}


def versioned_cache(name: str, *, in_process: bool = False, ttl: int | None = None, ignore: Iterable[str] = (),
                    warm: bool | Iterable[dict] = False) -> Callable[[Callable], Callable]:
    """Cache the decorated selector's answers per data version under "<app label>.<name>".

    The key holds the name, every argument as bound to the signature (defaults applied, so f(as_of=t) and
    f(as_of=t, top=20) share an entry when 20 is the default) and the data version. The name must start with
    the label of the app whose module defines the selector and be unique: a clash raises at import.

    in_process: also keep the value in this process's memory for the data version (small reference values read
    on every request; see cached_in_process). ignore: arguments that do not change the answer (an optional
    lookup the caller already holds). warm: whether the post-ingestion warm-up calls it at the data's as-of
    (True: with as_of only; or the keyword-argument variants to call it with besides as_of).

    The wrapper keeps the undecorated selector as .uncached, its name as .cache_name, and .prime(entries)
    stores precomputed answers (an iterable of (keyword arguments, value)) under the keys a call would use."""
    ignored = frozenset(ignore)
    variants = ({},) if warm is True else tuple(warm or ())

    def decorate(fn: Callable) -> Callable:
        app_label = fn.__module__.split(".")[0]
        if name.split(".")[0] != app_label or name.count(".") < 1:
            raise ImproperlyConfigured(f"cache name {name!r} of {fn.__module__}.{fn.__qualname__} must start with "
                                       f"its app label {app_label!r} and a dot")
        where = f"{fn.__module__}.{fn.__qualname__}"
        if name in _SELECTORS and _SELECTORS[name].defined_at != where:
            raise ImproperlyConfigured(f"cache name {name!r} is registered twice: {_SELECTORS[name].defined_at} and {where}")
        signature = inspect.signature(fn)
        unknown = ignored - set(signature.parameters)
        if unknown:
            raise ImproperlyConfigured(f"{name}: ignore names no parameter: {sorted(unknown)}")
        for variant in variants:
            try:
                signature.bind(as_of=None, **variant)
            except TypeError as exc:
                raise ImproperlyConfigured(f"{name}: warm variant {variant!r} does not fit the selector: {exc}") from None

        def params_of(args: tuple, kwargs: dict) -> dict:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return {k: v for k, v in bound.arguments.items() if k not in ignored}

        @functools.wraps(fn)
        def selector(*args, **kwargs):
            params = params_of(args, kwargs)
            if in_process:
                return _cached_in_process(name, params, lambda: fn(*args, **kwargs))
            return cached(name, params, lambda: fn(*args, **kwargs), ttl)

        def prime(entries: Iterable[tuple[dict, Any]]) -> int:
            if not getattr(settings, "CACHE_ENABLED", True):
                return 0
            values = {cache_key(name, params_of((), kwargs)): value for kwargs, value in entries}
            cache.set_many(values, ttl or settings.CACHE_TTL_SECONDS)
            return len(values)

        selector.cache_name = name
        selector.defined_at = where
        selector.uncached = fn
        selector.prime = prime
        selector.warm_variants = variants
        _SELECTORS[name] = selector
        return selector

    return decorate


def cached_selector(name: str) -> Callable:
    """The selector registered under this cache name; UnknownCacheName (naming the known ones) when none is."""
    try:
        return _SELECTORS[name]
    except KeyError:
        raise UnknownCacheName(f"no @versioned_cache selector is named {name!r}; known: {sorted(_SELECTORS)}") from None


def cached_selectors(app_label: str) -> list[Callable]:
    """The selectors of one app registered so far, in registration order."""
    return [s for n, s in _SELECTORS.items() if n.split(".")[0] == app_label]


def warmed_selectors(app_label: str) -> list[Callable]:
    """The selectors of this app registered with warm=...; UnknownCacheName when there is none (a typo in the
    label, or its selectors module not imported)."""
    chosen = [s for s in cached_selectors(app_label) if s.warm_variants]
    if not chosen:
        raise UnknownCacheName(f"no selector of app {app_label!r} is registered with warm=...; "
                               f"known names: {sorted(_SELECTORS)}")
    return chosen


def warm_selectors(app_label: str, *, as_of) -> list[str]:
    """Fill the cache of every selector of this app registered with warm=..., at as_of; returns their names."""
    chosen = warmed_selectors(app_label)
    for selector in chosen:
        for variant in selector.warm_variants:
            selector(as_of=as_of, **variant)
    return [s.cache_name for s in chosen]


def reread_data_version() -> None:
    """Forget the shared and in-process memos of the data version: the next read asks the database (a worker
    warming caches right after another process's ingestion committed)."""
    cache.delete(VERSION_KEY)
    forget_data_version()
