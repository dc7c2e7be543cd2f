"""Database settings from DATABASE_URL, or an embedded PostgreSQL (pgserver) when it is unset."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

POSTGRES_REQUIRED = (
    "PRODPLAN needs PostgreSQL 15 or newer: DATABASE_URL={url!r} is not a PostgreSQL URL "
    "(use postgresql://user:password@host:5432/dbname, or leave DATABASE_URL unset to start "
    "the embedded PostgreSQL)."
)
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgresql+psycopg"}


class UnsupportedDatabaseError(RuntimeError):
    """DATABASE_URL names a database other than PostgreSQL."""


def database_from_url(url: str) -> dict:
    """Turn a postgresql:// URL into a Django DATABASES entry; refuse anything else."""
    parsed = urlparse(url)
    if parsed.scheme.lower() not in POSTGRES_SCHEMES:
        raise UnsupportedDatabaseError(POSTGRES_REQUIRED.format(url=_redact(url)))
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or unquote(parsed.hostname or "") or ""
    return {
        "ENGINE": "psqlextra.backend",
        "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
        "USER": unquote(parsed.username or "postgres"),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
        # JIT compilation costs seconds on the analytic statements and saves nothing at this data size.
        # prepare_threshold: Django's default (None) turns prepared statements off altogether; a huge threshold
        # keeps psycopg from preparing on its own and lets prodplan.db.fetch_prepared ask for it explicitly.
        "OPTIONS": {"options": "-c jit=off", "prepare_threshold": PREPARE_ONLY_WHEN_ASKED,
                    **{k: v for k, v in query.items() if k in {"sslmode", "application_name", "options"}}},
        "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME") or None},
    }


PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the project's own PostgreSQL from the pgserver package; stopped at exit."""
    import pgserver  # imported lazily: only the embedded default needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    _exit_cleanly_on_sigterm()
    return server.get_uri()


def _exit_cleanly_on_sigterm() -> None:
    """SIGTERM (a stopped `make demo`, a timeout) exits through atexit, so pgserver stops its PostgreSQL.

    Only where nobody set a handler yet: gunicorn and Celery install their own."""
    import signal
    import sys
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
