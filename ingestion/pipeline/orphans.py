"""Orphans: references to missing catalogue rows become data-quality issues with counts, closed when gone."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from ingestion.choices import IssueStatus
from ingestion.models import DataQualityIssue, IngestionRun, SheetRun
from ingestion.pipeline.sql import (
    ORPHAN_CHECKS,
    PER_KEY_ENTITIES,
    order_phase_ids_sql,
    orphan_keys_sql,
    orphan_summary_sql,
)


def record_orphans(run: IngestionRun, sheet_runs: dict[str, SheetRun]) -> None:
    """Orphan references become data-quality issues with counts; issues not seen again close (reconcile).

    Checked on the stored rows, so a sheet not re-read this run is counted too. The counts go on the
    in-memory sheet runs, which the pipeline saves afterwards (an UPDATE here would be overwritten)."""
    now = timezone.now()
    seen: set[tuple[str, str, str]] = set()
    with connection.cursor() as cursor:
        for statement in order_phase_ids_sql():
            cursor.execute(statement)
        for kind, entity, table, column, target_table, target_column in ORPHAN_CHECKS:
            cursor.execute(orphan_summary_sql(table, column, target_table, target_column))
            distinct, matched, orphan_rows, sample, _rows = cursor.fetchone()
            sheet = entity.split(".")[0]
            if sheet in sheet_runs and orphan_rows:
                sheet_runs[sheet].orphans = int(orphan_rows)
            if not distinct or matched == distinct:
                continue
            rate = matched / distinct
            key = (kind, entity, "*")
            seen.add(key)
            upsert_issue(
                run, now, key, row_count=orphan_rows, measured=rate, sample=list(sample),
                detail=f"{distinct - matched:,} of {distinct:,} distinct values of {entity} match no {target_table.split('_', 1)[1]} "
                f"(match rate {rate:.1%}); {orphan_rows:,} rows are stored anyway.",
            )
            if entity in PER_KEY_ENTITIES:
                cursor.execute(orphan_keys_sql(table, column, target_table, target_column))
                for value, count in cursor.fetchall():
                    key = (kind, entity, str(value))
                    seen.add(key)
                    upsert_issue(run, now, key, row_count=count, measured=None, sample=[],
                                  detail=f"{count:,} rows of {entity} name {value}, which is not in the catalogue.")
    closing = DataQualityIssue.objects.filter(status=IssueStatus.OPEN)
    for issue in closing.only("id", "kind", "entity", "key"):
        if (issue.kind, issue.entity, issue.key) not in seen:
            DataQualityIssue.objects.filter(pk=issue.pk).update(status=IssueStatus.CLOSED, closed_at=now, last_seen_run=run)


def upsert_issue(run, now, key, *, row_count, measured, sample, detail) -> None:
    kind, entity, value = key
    issue, created = DataQualityIssue.objects.get_or_create(
        kind=kind, entity=entity, key=value,
        defaults={"first_seen_run": run, "last_seen_run": run, "row_count": row_count, "measured": measured, "sample": sample, "detail": detail},
    )
    if not created:
        issue.last_seen_run = run
        issue.row_count, issue.measured, issue.sample, issue.detail = row_count, measured, sample, detail
        issue.status, issue.closed_at = IssueStatus.OPEN, None
        issue.save()
