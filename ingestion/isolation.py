"""Ingest a recorded run in a child process with a memory limit, so that any crash fails the run with a reason.

Why: one cell at XFD200000 made calamine allocate 100 GB; the Celery worker died and the run showed "running".
The extent checks (ingestion.reader) refuse that file now, but a parser bug or a new trick must not take the
worker down either: the Celery task runs `manage.py ingest_run RUN_ID` under RLIMIT_AS and, when the child dies
(a signal, an allocation refused, a non-zero exit) while the run is still pending or running, fails the run
naming how it died. Progress still flows through the shared cache (Redis), so the page shows it live.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

from django.conf import settings
from django.utils import timezone

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun

MB = 1024 * 1024


def _limit_memory(limit_mb: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * MB, limit_mb * MB))
    return apply


def _how_it_died(returncode: int, stderr: str, limit_mb: int) -> str:
    """The run's error: the signal or exit code, the memory limit it ran under, and the child's last error line."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = f"the ingesting process was killed by {name}"
    else:
        cause = f"the ingesting process exited with code {returncode}"
    cause += f" (memory limit {limit_mb:,} MB)"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    if last:
        cause += f": {last[:300]}"
    return cause + "; no data was changed"


def ingest_run_in_child(*, run_id: int, memory_limit_mb: int | None = None, timeout: float | None = None) -> IngestionRun:
    """Run `manage.py ingest_run run_id` in a child process under a memory limit; a child that dies fails the run."""
    limit = memory_limit_mb or settings.INGEST_MEMORY_LIMIT_MB
    child = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "ingest_run", str(run_id)],
        cwd=settings.BASE_DIR, preexec_fn=_limit_memory(limit), capture_output=True, text=True,
        timeout=timeout or settings.CELERY_TASK_TIME_LIMIT,
    )
    if child.returncode != 0:
        IngestionRun.objects.filter(pk=run_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), error=_how_it_died(child.returncode, child.stderr, limit))
    return IngestionRun.objects.get(pk=run_id)
