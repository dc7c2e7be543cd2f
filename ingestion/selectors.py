"""Reads of the ingestion audit."""

from __future__ import annotations

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun


def last_successful_run() -> IngestionRun | None:
    """The newest run that stored data (succeeded), ignoring no-op and failed runs."""
    return IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").first()
