"""The Redis cache backend: shared through real Redis, and process-local while Redis cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from prodplan import metrics
from prodplan.cache_backend import RETRY_REDIS_AFTER_SECONDS, RedisWithLocalFallback
from tests.ingestion.test_reliability import _database_url

REDIS_URL = os.environ.get("CACHE_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: a real connection refusal
OPTIONS = {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}


def _backend(url: str) -> RedisWithLocalFallback:
    return RedisWithLocalFallback(url, {"KEY_PREFIX": "backend-test", "OPTIONS": OPTIONS})


def _redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def test_unreachable_redis_caches_locally_and_says_so():
    backend = _backend(DEAD_REDIS_URL)
    before = metrics.CACHE_FALLBACKS._value.get()
    started = time.perf_counter()
    backend.set("k", {"a": 1}, 60)
    assert backend.redis_down and metrics.CACHE_FALLBACKS._value.get() == before + 1
    assert backend.get("k") == {"a": 1} and backend.get("missing", "default") == "default"
    assert backend.add("k", "other", 60) is False and backend.add("n", 1, 60) is True
    assert backend.incr("n") == 2
    backend.set_many({"x": 1, "y": 2}, 60)
    assert backend.get_many(["x", "y", "z"]) == {"x": 1, "y": 2}
    backend.delete("x")
    assert backend.get("x") is None
    assert time.perf_counter() - started < RETRY_REDIS_AFTER_SECONDS  # one failed connect, then local at once
    assert metrics.CACHE_FALLBACKS._value.get() == before + 1  # Redis not retried within the window


@pytest.mark.skipif(not _redis_available(), reason=f"Redis is not reachable at {REDIS_URL}")
def test_reachable_redis_is_shared_and_used_again_after_an_outage_window():
    raw = redis.Redis.from_url(REDIS_URL)
    raw.flushdb()
    backend = _backend(REDIS_URL)
    backend.set("shared", 7, None)  # None: no expiry, as Django means it
    assert not backend.redis_down and _backend(REDIS_URL).get("shared") == 7  # another process would see it
    key = backend.make_and_validate_key("shared")
    assert raw.ttl(key) == -1
    backend._redis_down_until = time.monotonic() + 60  # as after a failure: the local memory answers
    backend.set("only-here", 1, 60)
    assert backend.get("only-here") == 1 and raw.exists(backend.make_and_validate_key("only-here")) == 0
    backend._redis_down_until = 0.0  # the window is over: Redis again
    assert backend.get("shared") == 7 and backend.get("only-here") is None
    backend.clear()
    assert raw.dbsize() == 0


@pytest.mark.django_db(transaction=True)
def test_api_serves_from_process_memory_when_redis_is_down():
    # Transactional (run last, as pytest-django orders them): no open test transaction whose TRUNCATE would
    # lock the subprocess out of the same tables.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "prodplan.settings", "REDIS_URL": "redis://127.0.0.1:1/0",
           "DATABASE_URL": _database_url(),  # the test database: its tables exist
           "PRODPLAN_PUBLIC_READS": "1"}  # anonymous reads opened: the subprocess has no key of the test database
    code = (
        "import django, json; django.setup(); from django.test import Client; c = Client(); "
        "h = c.get('/api/health'); a = c.get('/api/prodplan/orders'); b = c.get('/api/prodplan/orders'); "
        "print(json.dumps([h.status_code, h.json()['failing'], a.status_code, a.get('X-Cache'), b.get('X-Cache')]))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    health, failing, first, first_cache, second_cache = json.loads(result.stdout.strip().splitlines()[-1])
    assert (health, sorted(failing)) == (503, ["broker", "cache"])  # health says Redis is down ...
    assert (first, first_cache, second_cache) == (200, "miss", "hit")  # ... and the API still answers, cached
