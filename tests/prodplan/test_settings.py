"""Settings: PostgreSQL only, with a clear refusal message for anything else."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from prodplan.database import PREPARE_ONLY_WHEN_ASKED, UnsupportedDatabaseError, database_from_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("url", ["sqlite:///db.sqlite3", "mysql://root@localhost/prodplan", "oracle://x@y/z"])
def test_non_postgres_database_url_is_refused(url):
    with pytest.raises(UnsupportedDatabaseError, match="PostgreSQL 15 or newer"):
        database_from_url(url)


def test_sqlite_refusal_at_start():
    env = {**os.environ, "DATABASE_URL": "sqlite:///tmp.db"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "PostgreSQL 15 or newer" in result.stderr


def test_postgres_url_parsing():
    config = database_from_url("postgresql://app:s%40cret@db.example:6543/plant?sslmode=require")
    assert config["ENGINE"] == "psqlextra.backend"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "app", "s@cret", "db.example", "6543", "plant",
    )
    assert config["OPTIONS"] == {"sslmode": "require", "options": "-c jit=off", "prepare_threshold": PREPARE_ONLY_WHEN_ASKED}


def test_socket_url_from_pgserver():
    config = database_from_url("postgresql://postgres:@/postgres?host=/tmp/pgdata")
    assert config["HOST"] == "/tmp/pgdata" and config["NAME"] == "postgres"


def test_locale_and_time_zone():
    assert settings.TIME_ZONE == "Europe/Lisbon" and settings.USE_TZ
    assert settings.LANGUAGE_CODE == "pt-pt"
    assert "en" in dict(settings.LANGUAGES)


@pytest.mark.django_db
def test_prepared_lookups_really_prepare_on_the_server():
    from django.db import connection

    from prodplan.db import fetch_prepared

    statement = "SELECT %s::int + 1 AS answer"
    assert fetch_prepared(statement, (41,)) == [{"answer": 42}]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int + 1%%'")
        assert cursor.fetchone()[0] == 1


@pytest.mark.django_db
def test_prepared_lookups_are_counted_and_logged_like_any_query(django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from prodplan.db import fetch_prepared

    with django_assert_num_queries(1):
        fetch_prepared("SELECT %s::int AS n", (7,))
    with CaptureQueriesContext(connection) as captured:
        fetch_prepared("SELECT %(n)s::int AS n", {"n": 8})
    assert captured.captured_queries[0]["sql"] == "SELECT 8::int AS n"
