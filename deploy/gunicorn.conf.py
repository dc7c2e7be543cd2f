"""gunicorn settings for production: Prometheus multiprocess mode, so /metrics adds up every worker's counters.

Without it each sync worker answered /metrics with its own counters (scrapes read 323, 324, 336...). With
PROMETHEUS_MULTIPROC_DIR set (compose sets it, one directory per container), every process that imports
prometheus_client writes its samples there and /metrics sums them: the web workers and `manage.py` commands run in
the web container. The Celery worker serves its own sum (prodplan/worker_metrics.py).
"""

import os
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))


def on_starting(server):
    """A fresh start begins from empty files of the web's own processes (counters restart, as Prometheus expects)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*_*.db"):
            stale.unlink(missing_ok=True)


def child_exit(server, worker):
    """A worker that exits leaves its counters in the sum; its live gauges are dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
