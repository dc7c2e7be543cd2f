"""The database restarts while gunicorn serves the API: requests answer 200 or a clean 503 with Retry-After, and serving resumes in the same workers.

The database is an embedded PostgreSQL (the pgserver package) in a temporary folder, stopped and
started with its own pg_ctl, so the shared server of DATABASE_URL is never touched. gunicorn runs
with the cache off, so every request needs the database.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.gunicorn_server import first_answer, free_port, gunicorn

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_LIKE_SECRET = secrets.token_urlsafe(64)  # gunicorn refuses DEBUG=0 with a placeholder key
ENDPOINTS = ["/api/prodplan/orders", "/api/kpis/overview", "/api/quality/overview", "/api/smartinventory/wip"]
CLIENTS = 4
OUTAGE_SECONDS = 3.0
RECOVERY_LIMIT_SECONDS = 15.0

def _children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@pytest.fixture(scope="module")
def embedded_pg(tmp_path_factory):
    """A fresh embedded PostgreSQL with the project's schema; deleted afterwards."""
    pgserver = pytest.importorskip("pgserver")
    # Not under pytest's basetemp: pgserver runs PostgreSQL as its own system user when we are root, which needs
    # to traverse the parent folders, and any other pytest session starting meanwhile resets
    # /tmp/pytest-of-<user> to 0700 (seen: "pg_ctl: could not access directory ... Permission denied").
    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="prodplan-pg-")) / "pgdata", cleanup_mode="delete")
    uri = server.get_uri()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update({"DATABASE_URL": uri, "PRODPLAN_VAR_DIR": str(tmp_path_factory.mktemp("var"))})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    yield server, env
    server.cleanup()
    shutil.rmtree(server.pgdata.parent, ignore_errors=True)


@pytest.fixture
def web(embedded_pg, tmp_path):
    """gunicorn (2 sync workers, cache off) on the embedded database; yields (base port, arbiter process)."""
    _, env = embedded_pg
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with gunicorn({**env, "PRODPLAN_CACHE": "0", "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": PRODUCTION_LIKE_SECRET,
                   "THROTTLE_ANON": "1000000/min",
                   "PRODPLAN_PUBLIC_READS": "1"},  # about the database, not credentials: reads opened
                  args=["-b", f"127.0.0.1:{port}", "-w", "2", "--timeout", "30", "--log-level", "warning"],
                  log=log) as process:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", ENDPOINTS[0])
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield port, process


def _client(port: int, seed: int, stop: threading.Event, outcomes: list) -> None:
    """Endpoints round-robin on one keep-alive connection; records (time, path, status, Retry-After, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    i = seed
    while not stop.is_set():
        path = ENDPOINTS[i % len(ENDPOINTS)]
        i += 1
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            outcomes.append((time.monotonic(), path, response.status, response.getheader("Retry-After"), body))
        except (OSError, http.client.HTTPException) as exc:
            outcomes.append((time.monotonic(), path, type(exc).__name__, None, b""))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        time.sleep(0.01)
    conn.close()


def test_database_restart_under_load_answers_503_then_recovers_in_the_same_workers(embedded_pg, web):
    from pgserver._commands import pg_ctl

    server, _ = embedded_pg
    port, arbiter = web
    workers_before = _children(arbiter.pid)
    assert len(workers_before) == 2

    outcomes: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=_client, args=(port, k, stop, outcomes)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        # Fast shutdown: open sessions are terminated (mid-request for some), new connections are refused.
        stopped_at = time.monotonic()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
        time.sleep(OUTAGE_SECONDS)
        server.ensure_postgres_running()  # pg_ctl start with pgserver's own socket and options
        restarted_at = time.monotonic()
        # Serving resumes: every endpoint answers 200 again within the limit, with no web restart.
        deadline = restarted_at + RECOVERY_LIMIT_SECONDS
        while time.monotonic() < deadline:
            recent = [o for o in outcomes[-4 * len(ENDPOINTS):] if o[0] > restarted_at]
            if len(recent) >= 4 * len(ENDPOINTS) and all(o[2] == 200 for o in recent):
                break
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    statuses = [o[2] for o in outcomes]
    unexpected = [(round(t - stopped_at, 2), path, status, body[:200]) for t, path, status, _, body in outcomes
                  if status not in (200, 503)]
    assert not unexpected, f"requests that neither succeeded nor failed cleanly: {unexpected[:10]}"
    unavailable = [o for o in outcomes if o[2] == 503]
    assert unavailable, "no request saw the outage"
    for _, path, _, retry_after, body in unavailable:
        assert retry_after is not None and int(retry_after) > 0, path
        payload = json.loads(body)
        assert payload["status"] == "unavailable" and payload["component"] == "database", payload
    # Every request during the outage window failed cleanly, and the first success after the restart came quickly.
    after = [o for o in outcomes if o[0] > restarted_at]
    first_ok = next((o[0] for o in after if o[2] == 200), None)
    assert first_ok is not None and first_ok - restarted_at < RECOVERY_LIMIT_SECONDS
    tail = after[-4 * len(ENDPOINTS):]
    assert len(tail) == 4 * len(ENDPOINTS) and all(o[2] == 200 for o in tail), [o[1:3] for o in tail]
    # The web process was not restarted: same arbiter, same workers.
    assert arbiter.poll() is None
    assert _children(arbiter.pid) == workers_before
    print(f"requests {len(statuses)}: 200 x{statuses.count(200)}, 503 x{len(unavailable)}; "
          f"first 200 {first_ok - restarted_at:.2f} s after the restart")


def test_database_down_with_the_response_cache_on_answers_503_not_500(embedded_pg, tmp_path):
    """The response cache reads the data version before any view runs: with the database down that read
    must give the documented 503 with Retry-After (it gave a 500 from outside DRF's handler)."""
    from pgserver._commands import pg_ctl

    server, env = embedded_pg
    port = free_port()
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
    try:
        with gunicorn({**env, "PRODPLAN_CACHE": "1", "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": PRODUCTION_LIKE_SECRET,
                       "PRODPLAN_PUBLIC_READS": "1", "THROTTLE_ANON": "1000000/min"},
                      args=["-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning"],
                      log=tmp_path / "gunicorn.log") as process:
            status, headers, body = first_answer(port, "/api/kpis/overview", process)
        assert status == 503, body[:300]
        assert int(headers["Retry-After"]) > 0
        assert json.loads(body)["component"] == "database"
    finally:
        server.ensure_postgres_running()
