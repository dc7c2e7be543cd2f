"""/api/health: database, cache/broker and data freshness, with the last release-gate result."""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from prodplan.models import DataVersion


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass
        return {"ok": False, "error": type(exc).__name__}


def _check_cache() -> dict:
    try:
        cache.set("prodplan:health", 1, 5)
        ok = cache.get("prodplan:health") == 1
        if getattr(cache, "redis_down", False):
            # Redis failed: answers still come, cached in each process's memory until Redis is back.
            return {"ok": False, "backend": "redis", "fallback": "process-local memory while Redis is unreachable"}
        return {"ok": ok, "backend": "redis" if settings.REDIS_URL else "local-memory"}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "backend": "redis", "error": type(exc).__name__}


def _check_broker() -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "eager (in-process)"}
    try:
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2).ping()
        return {"ok": True, "mode": "redis"}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "mode": "redis", "error": type(exc).__name__}


def _data_freshness() -> dict:
    """The data's as-of and when the load that stored it was recorded (prodplan.models.DataVersion)."""
    try:
        row = DataVersion.objects.filter(pk=1).values("version", "as_of", "as_of_recorded_at").first()
    except Exception:  # noqa: BLE001
        return {"as_of": None}
    if row is None or row["as_of"] is None:
        return {"as_of": None, "detail": "no successful ingestion yet"}
    recorded = row["as_of_recorded_at"]
    age = (timezone.now() - recorded).total_seconds() if recorded else None
    return {
        "data_version": row["version"],
        "as_of": row["as_of"],
        "recorded_at": recorded,
        "age_seconds": None if age is None else round(age),
    }


def _release_gate() -> dict | None:
    """The last release-gate result (cache, else the file the command writes)."""
    try:
        result = cache.get("prodplan:release_gate")
    except Exception:  # noqa: BLE001
        result = None
    if result is None:
        path = settings.VAR_DIR / "release_gate.json"
        if path.exists():
            try:
                result = json.loads(path.read_text())
            except ValueError:
                result = None
    return result


@never_cache
def health_view(request):
    database = _check_database()
    components = {"database": database, "cache": _check_cache(), "broker": _check_broker()}
    failing = [name for name, result in components.items() if not result["ok"]]
    payload = {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "components": components,
        "data": _data_freshness() if database["ok"] else None,
        "release_gate": _release_gate(),
    }
    return JsonResponse(payload, status=200 if not failing else 503)
