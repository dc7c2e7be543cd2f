"""Shared fixtures: real PostgreSQL (DATABASE_URL), a clean cache per test, API keys."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection


@pytest.fixture(autouse=True, scope="session")
def _eager_celery():
    """Tests run tasks in-process even when REDIS_URL is set; the worker test starts a real worker itself."""
    from prodplan.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture
def broker_down():
    """Tasks are published (not eager) to a Redis address where nothing listens: a real connection refusal."""
    from prodplan.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url, app._pool, app.amqp._producer_pool)
    app.conf.task_always_eager = False
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None
    yield
    # Not closed: kombu keeps producer pools in a global registry keyed by connection, and the next test
    # with the broker down would get this one back closed ("Acquire on closed pool").
    app.conf.task_always_eager, app.conf.broker_url, app._pool, app.amqp._producer_pool = saved


@pytest.fixture(autouse=True)
def _isolated_domain_data(request):
    """A database test that does not ask for the session's ingested workbook starts from empty domain tables.

    The truncation happens inside the test's own transaction (the db fixture is entered first), so the
    rollback brings the session data back for the tests that use it."""
    marker = request.node.get_closest_marker("django_db")
    wants_db = marker is not None or "db" in request.fixturenames
    transactional = "transactional_db" in request.fixturenames or "live_server" in request.fixturenames or (
        marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    )
    if not wants_db or transactional or "ingested" in request.fixturenames:
        yield
        return
    request.getfixturevalue("db")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_ingestionrun CASCADE")
        cursor.execute(FORGET_AS_OF)
    yield


@pytest.fixture(autouse=True)
def _clean_cache():
    """Cache entries are keyed by data version, which test transactions roll back: start each test empty."""
    clear_caches()
    yield
    clear_caches()


def clear_caches() -> None:
    """The shared cache, this process's rendered responses and its memo of the data version."""
    from prodplan.cache import forget_data_version
    from prodplan.response_cache import LOCAL

    cache.clear()
    LOCAL.clear()
    forget_data_version()


@pytest.fixture
def api_key(db) -> str:
    from prodplan.models import ApiKey

    _, raw = ApiKey.generate(name="test client")
    return raw


@pytest.fixture
def api_client(db):
    """A DRF client of a logged-in reader (a supervisor, not staff): factory data needs a login or a key.

    Authentication is forced (DRF's test helper), so query counts stay those of the endpoint itself; the
    closed default itself is tested with `anonymous_api_client` and real keys and sessions."""
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    from prodplan.roles import SUPERVISORS, ensure_role_groups

    ensure_role_groups()
    reader = User.objects.create_user("api-reader-fixture", password="pw-reader-123")
    reader.groups.add(Group.objects.get(name=SUPERVISORS))
    client = APIClient()
    client.force_authenticate(user=reader)
    return client


@pytest.fixture
def anonymous_api_client():
    """A DRF client with no credentials at all."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def supervisor_client(client, db):
    """The test client logged in as a member of the supervisors group."""
    from django.contrib.auth.models import Group, User

    from prodplan.roles import SUPERVISORS, ensure_role_groups

    ensure_role_groups()
    user = User.objects.create_user("supervisor-fixture", password="pw-supervisor-123")
    user.groups.add(Group.objects.get(name=SUPERVISORS))
    client.force_login(user)
    return client


@pytest.fixture
def keyed_client(api_key):
    """An API client of its own carrying a valid key (anonymous_api_client stays anonymous in the same test)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    return client


DEMO_SCALE = 0.005
DEMO_SEED = 42
DEMO_AS_OF = "2025-12-15"


@pytest.fixture(scope="session")
def demo_workbook(tmp_path_factory) -> dict:
    """A small generated workbook (scale 0.005) and its manifest, made once per test session."""
    import json

    from django.core.management import call_command

    path = tmp_path_factory.mktemp("workbook") / "Folha_IA_demo.xlsx"
    call_command("make_demo_workbook", str(path), scale=DEMO_SCALE, seed=DEMO_SEED, as_of=DEMO_AS_OF)
    manifest = json.loads(path.with_suffix(".manifest.json").read_text())
    return {"path": path, "manifest": manifest}


@pytest.fixture(scope="session")
def ingested(django_db_setup, django_db_blocker, demo_workbook) -> dict:
    """The demo workbook ingested once and committed for the session.

    Use with the `db` fixture (not transactional_db: pytest-django runs those last and they
    flush the tables). Tests that need empty domain tables TRUNCATE them inside their own
    test transaction, which the rollback undoes."""
    from ingestion.services import ingest_workbook

    with django_db_blocker.unblock():
        run = ingest_workbook(path=str(demo_workbook["path"]))
    assert run.status == "succeeded", run.error
    return {"run_id": run.pk, "as_of": run.as_of, **demo_workbook}


# With the runs gone, no data is loaded: the kernel's record of the data's as-of goes too (prodplan.models.DataVersion).
FORGET_AS_OF = "UPDATE prodplan_dataversion SET as_of = NULL, as_of_recorded_at = NULL"

DOMAIN_TABLES = [
    "orders_phase", "orders_product", "orders_routestep", "orders_employee", "orders_employeeskill",
    "orders_manufacturingorder", "orders_orderphase", "orders_phaseassignment", "quality_qualityerror",
]


@pytest.fixture
def empty_tables(db):
    """Start from empty domain and audit tables (inside the test transaction: the rollback restores them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_reject, ingestion_sheetrun, ingestion_dataqualityissue, "
            "ingestion_ingestionrun CASCADE"
        )
        cursor.execute(FORGET_AS_OF)


@pytest.fixture
def pinned_queries(django_assert_num_queries):
    """`with pinned_queries("name"):` asserts the block runs exactly tests.query_counts.QUERY_COUNTS["name"] queries.

    The count does not depend on the clock: the block starts with the data-version memo empty and the memo lasts the
    whole block (prodplan.cache keeps it VERSION_MEMO_SECONDS, so a slow request would otherwise read the version once
    more per second it takes). With PRODPLAN_MEASURE_QUERIES=<file> it asserts nothing and appends
    "name<TAB>count" lines to that file instead (how the pinned figures are measured; see tests/query_counts.py)."""
    import os
    from contextlib import contextmanager
    from unittest import mock

    from django.test.utils import CaptureQueriesContext

    from prodplan import cache as kernel_cache
    from tests.query_counts import QUERY_COUNTS

    measure_into = os.environ.get("PRODPLAN_MEASURE_QUERIES")

    @contextmanager
    def pinned(name: str):
        with mock.patch.object(kernel_cache, "VERSION_MEMO_SECONDS", 3600.0):
            kernel_cache.forget_data_version()
            with _counted(name) as context:
                yield context

    @contextmanager
    def _counted(name: str):
        if measure_into:
            with CaptureQueriesContext(connection) as context:
                yield context
            with open(measure_into, "a") as out:
                out.write(f"{name}\t{len(context)}\n")
            return
        assert name in QUERY_COUNTS, f"no pinned query count for {name!r} in tests/query_counts.py"
        with django_assert_num_queries(QUERY_COUNTS[name]) as context:
            yield context

    return pinned
