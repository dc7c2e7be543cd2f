"""Database settings from DATABASE_URL, or an embedded PostgreSQL (pgserver) when it is unset."""

from __future__ import annotations

import os
import threading
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


EMBEDDED_ENGINE = "prodplan.embedded_psqlextra"  # psqlextra requires its name in ENGINE


def embedded_database(data_dir: Path) -> dict:
    """The DATABASES entry of the project's own PostgreSQL in data_dir; nothing starts until the first connection
    (prodplan.embedded_psqlextra), so importing the settings never starts a server."""
    config = database_from_url("postgresql://postgres:@/postgres")
    config.update({"ENGINE": EMBEDDED_ENGINE, "EMBEDDED_DATA_DIR": str(data_dir)})
    return config


_embedded_lock = threading.Lock()
_embedded_urls: dict[str, str] = {}


def start_embedded(settings_dict: dict) -> None:
    """Start (or join) the embedded server of settings_dict once per process, and point settings_dict at it."""
    data_dir = settings_dict["EMBEDDED_DATA_DIR"]
    with _embedded_lock:
        if data_dir not in _embedded_urls:
            _embedded_urls[data_dir] = embedded_database_url(Path(data_dir))
    running = database_from_url(_embedded_urls[data_dir])
    settings_dict.update({key: running[key] for key in ("HOST", "PORT", "USER", "PASSWORD")})


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

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
