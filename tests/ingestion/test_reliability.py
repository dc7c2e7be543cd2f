"""Killing an ingestion in the middle of its merge changes nothing, and the next run succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from ingestion.models import IngestionRun
from tests.ingestion.builders import base_rows, write_workbook

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    host = db["HOST"] or "127.0.0.1"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={host}"
    return f"postgresql://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def _ingest_subprocess(path: Path, **env) -> subprocess.Popen:
    environment = {**os.environ, "DATABASE_URL": _database_url(), **env}
    environment.pop("REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "ingest", str(path)], cwd=ROOT, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _table_digest() -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM orders_orderphase), (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM orders_orderphase t), "
            "(SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM orders_manufacturingorder t)"
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_kill_during_merge_changes_nothing_and_next_run_succeeds(tmp_path):
    from tests.conftest import DOMAIN_TABLES

    with connection.cursor() as cursor:  # committed: this test runs on its own data (the flush after it cleans up)
        cursor.execute("TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_ingestionrun CASCADE")
    first = _ingest_subprocess(write_workbook(tmp_path / "a.xlsx"))
    assert first.wait(timeout=120) == 0, first.stderr.read()
    before = _table_digest()

    rows = base_rows()
    rows["FasesOrdemFabrico"][2][3] = "2024-02-03 12:00:00"
    rows["OrdensFabrico"].append([1009, "2024-04-01 08:00:00", None, 10, 1, None])
    changed = write_workbook(tmp_path / "b.xlsx", rows)
    marker = tmp_path / "paused"
    victim = _ingest_subprocess(changed, PRODPLAN_FAULT_PAUSE=f"merge:FasesOrdemFabrico:{marker}")
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline, "the ingestion never reached the merge"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # orders are merged, order phases half-way: no commit happened
    victim.wait(timeout=30)
    assert _table_digest() == before
    killed = IngestionRun.objects.order_by("-id").first()
    assert killed.status == "running"

    after = _ingest_subprocess(changed)
    assert after.wait(timeout=120) == 0, after.stderr.read()
    killed.refresh_from_db()
    assert killed.status == "failed" and "interrupted" in killed.error
    assert IngestionRun.objects.order_by("-id").first().status == "succeeded"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_manufacturingorder WHERE id = 1009")
        assert cursor.fetchone()[0] == 1
