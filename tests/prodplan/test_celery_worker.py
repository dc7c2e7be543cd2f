"""A real Celery worker and beat against Redis run every scheduled task end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.ingestion.builders import write_workbook
from tests.ingestion.test_reliability import _database_url

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CELERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not _redis_available(), reason=f"Redis is not reachable at {REDIS_URL}"),
]


@pytest.fixture
def worker_env(tmp_path):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": REDIS_URL,
        "PRODPLAN_INBOX_DIR": str(inbox),
        "PRODPLAN_VAR_DIR": str(tmp_path / "var"),
        "INBOX_POLL_SECONDS": "1",
        "INBOX_SETTLE_SECONDS": "2",  # the file is written before beat starts; a real drop waits 30 s
    }
    with connection.cursor() as cursor:
        from tests.conftest import DOMAIN_TABLES

        cursor.execute("TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_ingestionrun CASCADE")
    return env, inbox


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "prodplan", *args], cwd=ROOT, env=env,
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def test_worker_and_beat_run_every_task(worker_env, tmp_path):
    from celery import Celery

    env, inbox = worker_env
    worker = _start(["worker", "--loglevel=INFO", "--concurrency=1", "--pool=solo", "-n", "test@%h"], env, tmp_path / "worker.log")
    beat = None
    try:
        client = Celery("prodplan-test", broker=REDIS_URL, backend=REDIS_URL)
        client.conf.task_always_eager = False
        # beat: the inbox watch ingests a workbook dropped in the inbox
        write_workbook(inbox / "Folha_IA.xlsx")
        beat = _start(["beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule")], env, tmp_path / "beat.log")
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT status, trigger FROM ingestion_ingestionrun ORDER BY id DESC LIMIT 1")
                row = cursor.fetchone()
            if row and row[0] in ("succeeded", "failed"):
                status = row
                break
            time.sleep(0.5)
        assert status == ("succeeded", "beat"), (tmp_path / "worker.log").read_text()[-3000:]
        # the same inbox file again: the hash says unchanged, no second run
        result = client.send_task("ingestion.tasks.ingest_inbox_task").get(timeout=60)
        assert result["status"] in ("unchanged", "skipped")
        for name in ("orders.refresh_aggregates", "orders.maintain_partitions"):
            assert client.send_task(name).get(timeout=120) == "ok", name
        training = client.send_task("mlops.tasks.train_all_models_task").get(timeout=300)
        assert isinstance(training, dict)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orders_manufacturingorder")
            assert cursor.fetchone()[0] == 3
    finally:
        if beat is not None:
            _stop(beat)
        _stop(worker)
