"""Reads of the ingestion audit."""

from __future__ import annotations

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun


def last_successful_run() -> IngestionRun | None:
    """The newest run that stored data (succeeded), ignoring no-op and failed runs."""
    return IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").first()


def run_report(run: IngestionRun) -> dict:
    """Everything a steward asks after a run: counts per sheet, rejects by reason, issues, timings, profile."""
    from django.db.models import Count

    from ingestion.choices import IssueStatus
    from ingestion.models import DataQualityIssue, Reject

    sheets = list(
        run.sheets.values(
            "sheet", "rows_read", "rows_loaded", "rows_rejected", "inserted", "updated", "unchanged", "deleted", "orphans", "seconds", "reconciled"
        )
    )
    by_reason = list(Reject.objects.filter(run=run).values("sheet", "reason").annotate(rows=Count("id")).order_by("sheet", "reason"))
    issues = list(
        DataQualityIssue.objects.filter(last_seen_run=run, status=IssueStatus.OPEN, key="*")
        .values("kind", "entity", "row_count", "measured", "detail", "sample")
        .order_by("entity")
    )
    per_key_orphans = (
        DataQualityIssue.objects.filter(last_seen_run=run, status=IssueStatus.OPEN).exclude(key="*").count()
    )
    return {
        "run_id": run.pk,
        "file_name": run.file_name,
        "file_sha256": run.file_sha256,
        "status": run.status,
        "error": run.error,
        "as_of": run.as_of,
        "created_at": run.created_at,
        "duration_seconds": run.duration_seconds,
        "timings": run.timings,
        "sheets": sheets,
        "rejects_by_reason": by_reason,
        "rejects_total": sum(item["rows"] for item in by_reason),
        "data_quality_issues": issues,
        "orphan_keys_open": per_key_orphans,
        "profile": run.profile,
        "admin_rejects_url": f"/admin/ingestion/reject/?run__id__exact={run.pk}",
    }
