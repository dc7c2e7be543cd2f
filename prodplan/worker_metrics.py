"""The Celery worker's /metrics: ingestion, reject and training counters incremented in the worker reach Prometheus.

Prometheus multiprocess mode, one directory per container (process ids are per container, so a directory shared
between containers would mix two processes' files): every pool process writes its samples to
PROMETHEUS_MULTIPROC_DIR, and the worker's main process serves their sum on CELERY_METRICS_PORT (compose: the
`prodplan-worker` scrape job). Without PROMETHEUS_MULTIPROC_DIR (development, tests) nothing is started.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("prodplan.metrics")


def multiprocess_directory() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def serve_worker_metrics() -> int | None:
    """Empty the directory, then serve the sum of the worker's processes; returns the port, or None when off."""
    directory = multiprocess_directory()
    if directory is None:
        return None
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*_*.db"):
        stale.unlink(missing_ok=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    port = int(os.environ.get("CELERY_METRICS_PORT", "9808"))
    start_http_server(port, registry=registry)
    logger.info("worker metrics served", extra={"port": port})
    return port


def forget_process(pid: int) -> None:
    """A pool process that exits keeps its counters in the sum; its live gauges are dropped."""
    if multiprocess_directory() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
