"""Why a run cannot proceed: the pipeline's exceptions."""

from __future__ import annotations


class IngestionError(Exception):
    """A run that cannot proceed; the message says why and what to do."""


class AlreadyRunning(IngestionError):
    def __init__(self, run_id: int | None):
        self.run_id = run_id
        super().__init__(f"already running: run {run_id}" if run_id else "already running: another ingestion holds the lock")


class ShrinkRefused(IngestionError):
    pass
