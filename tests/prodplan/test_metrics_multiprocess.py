"""/metrics adds up (#17, operations): gunicorn's workers and a CLI process share one Prometheus sum, and the Celery
worker's counters are served by the worker itself."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.gunicorn_server import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = re.compile(r'^django_http_requests_total_by_method_total\{method="GET"\} ([0-9.e+]+)$', re.M)
REJECTS = re.compile(r'^prodplan_rejects_total\{reason="bad_date",sheet="FromTheCli"\} ([0-9.e+]+)$', re.M)


def _scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers={"Connection": "close"})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    assert response.status == 200, body[:300]
    return body


def test_every_scrape_sums_all_web_workers_and_the_cli(tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "GUNICORN_BIND": f"127.0.0.1:{port}",
           "GUNICORN_WORKERS": "3"}
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "prodplan.wsgi", "-c", "deploy/gunicorn.conf.py"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _scrape(port)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.3)
        # A counter incremented in another process of the container (what `manage.py ingest` does) is in the sum.
        subprocess.run([sys.executable, "-c", "import django; django.setup(); from prodplan.metrics import REJECTS; "
                        "REJECTS.labels(sheet='FromTheCli', reason='bad_date').inc(5)"],
                       cwd=ROOT, env=env, check=True, timeout=120)
        counts = []
        for _ in range(12):  # new connections: gunicorn hands them to its three workers in turn
            body = _scrape(port)
            assert REJECTS.search(body) and float(REJECTS.search(body).group(1)) == 5.0
            counts.append(float(REQUESTS.search(body).group(1)))
        # Each scrape is one more GET in the one sum, whichever worker answers it (per-worker counts jumped around).
        assert [b - a for a, b in zip(counts, counts[1:], strict=False)] == [1.0] * 11, counts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_celery_worker_serves_the_sum_of_its_processes(tmp_path):
    from prodplan.worker_metrics import serve_worker_metrics

    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-metrics"), "CELERY_METRICS_PORT": str(port)}
    code = ("import os, time, django; django.setup(); from prodplan.worker_metrics import serve_worker_metrics; "
            "serve_worker_metrics(); pid = os.fork()\n"
            "if pid == 0:\n"
            "    from prodplan.metrics import INGESTION_RUNS; INGESTION_RUNS.labels(status='succeeded').inc(2); os._exit(0)\n"
            "os.waitpid(pid, 0); print('ready', flush=True); time.sleep(30)")
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()[-2000:]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        assert re.search(r'^prodplan_ingestion_runs_total\{status="succeeded"\} 2\.0$', body, re.M), body[:2000]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert serve_worker_metrics.__module__ == "prodplan.worker_metrics"
