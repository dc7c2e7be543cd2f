"""A run's live per-sheet progress (cache while it runs) and its step log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache

from ingestion.models import IngestionRun

logger = logging.getLogger("prodplan.ingestion")


ProgressCallback = Callable[[str, int, int, float], None]


def progress_key(run_id: int) -> str:
    return f"prodplan:ingestion:progress:{run_id}"


@dataclass
class Progress:
    run_id: int
    callback: ProgressCallback | None
    state: dict

    def update(self, sheet: str, done: int, total: int, started: float, stage: str = "reading") -> None:
        elapsed = max(time.perf_counter() - started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate and total > done else 0.0
        self.state[sheet] = {"rows": done, "total": total, "rows_per_s": round(rate), "eta_s": round(eta, 1), "stage": stage}
        cache.set(progress_key(self.run_id), self.state, 3600)
        if self.callback:
            self.callback(sheet, done, total, elapsed)


def log_step(run: IngestionRun, step: str, **fields) -> None:
    logger.info("ingestion step", extra={"run_id": run.pk, "step": step, **fields})
