"""Reads of the ingestion audit."""

from __future__ import annotations

from pathlib import Path

from django.core.cache import cache
from django.db import connection

from ingestion.choices import IssueStatus, RunStatus, TriageStatus
from ingestion.inspector import redact_profile
from ingestion.models import DataQualityIssue, IngestionRun, Reject
from ingestion.pipeline.progress import progress_key
from ingestion.reader import file_sha256


def run_progress(run: IngestionRun) -> dict:
    """Live per-sheet progress (cache while running; the stored copy once finished)."""
    return cache.get(progress_key(run.pk)) or run.progress or {}


def last_successful_run() -> IngestionRun | None:
    """The newest run that stored data (succeeded), ignoring no-op and failed runs."""
    return IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").first()


def freshness() -> dict:
    """Last run, the data's as-of and its age, and open rejects, for the chip linking to the ingestion page
    (3 queries).

    The age is how old the data is: the wall clock minus the data's as-of (the latest timestamp in the last
    stored workbook), not minus the time of the run that loaded it. On the ingestion page and, through
    prodplan.pages (IngestionConfig.ready()), on the overview."""
    from django.utils import timezone

    last = IngestionRun.objects.order_by("-id").values("id", "status", "finished_at", "created_at").first()
    good = last_successful_run()
    as_of = good.as_of if good else None
    age = max(0.0, (timezone.now() - as_of).total_seconds()) if as_of else None
    return {
        "last_run": last,
        "as_of": as_of,
        "age_seconds": age,
        "age_days": int(age // 86400) if age is not None else None,
        "age_hours": int(age // 3600) if age is not None else None,
        "last_success_at": good.finished_at if good else None,
        "rejects_open": Reject.objects.filter(status=TriageStatus.OPEN).count(),
    }


def recent_runs(*, limit: int) -> list[dict]:
    """The newest runs with the rows each rejected (the sum over its sheets), one query, for the ingestion page."""
    from django.db.models import Sum

    return list(IngestionRun.objects.order_by("-id")
                .values("id", "file_name", "status", "trigger", "created_at", "duration_seconds", "as_of", "error")
                .annotate(rows_rejected=Sum("sheets__rows_rejected"))[:limit])


def inbox_decision(*, inbox: Path, now: float, settle_seconds: float, retry_failed_after_seconds: float) -> dict:
    """What the inbox watch should do with the newest workbook there: {"status": "ingest", "path": ...} or why not.

    Not yet: a file written less than settle_seconds ago (it may still be being copied in). Not again: the
    content of the last successful run, or content whose last run failed less than retry_failed_after_seconds
    ago (a broken export in the inbox would otherwise fail every poll)."""
    from datetime import timedelta

    from django.utils import timezone

    # Excel's lock files (~$name.xlsx, next to a workbook open on a share) and hidden files are not exports.
    candidates = [p for p in inbox.glob("*.xlsx") if not p.name.startswith(("~$", "."))] if inbox.is_dir() else []
    workbooks = sorted(candidates, key=lambda p: p.stat().st_mtime)
    if not workbooks:
        return {"status": "empty inbox"}
    newest = workbooks[-1]
    age = now - newest.stat().st_mtime
    if age < settle_seconds:
        return {"status": "settling", "file": newest.name, "seconds_since_write": round(age, 1)}
    digest = file_sha256(newest)
    last = last_successful_run()
    if last is not None and last.file_sha256 == digest:
        return {"status": "unchanged", "file": newest.name}
    latest_of_file = IngestionRun.objects.filter(file_sha256=digest).order_by("-id").first()
    if (latest_of_file is not None and latest_of_file.status == RunStatus.FAILED and latest_of_file.finished_at
            and timezone.now() - latest_of_file.finished_at < timedelta(seconds=retry_failed_after_seconds)):
        return {"status": "failed recently", "file": newest.name, "run_id": latest_of_file.pk,
                "error": latest_of_file.error}
    return {"status": "ingest", "path": newest, "file": newest.name}


def run_report(run: IngestionRun) -> dict:
    """Everything a steward asks after a run: counts per sheet, rejects by reason, issues, timings, profile."""
    from django.db.models import Count

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
        "profile": redact_profile(run.profile),  # also profiles stored before personal columns were redacted
        "admin_rejects_url": f"/admin/ingestion/reject/?run__id__exact={run.pk}",
    }


# Where each orphan check's rows lead to their order (the stored rows that name the orphan value); checks whose
# rows are not about an order (skills, routes) or whose order is the missing thing itself lead to none.
ORDER_OF_ROWS = {
    "orders_manufacturingorder": ("t.id", ""),
    "orders_orderphase": ("t.order_id", ""),
    "quality_qualityerror": ("t.order_id", ""),
    "orders_phaseassignment": ("op.order_id", " JOIN orders_orderphase op ON op.id = t.order_phase_id"),
}
ISSUE_ORDERS_LIMIT = 500  # ids in one link (the admin's order list filtered by id__in)


def orphan_check_of(issue: DataQualityIssue) -> tuple | None:
    """The orphan check behind an issue when its rows lead to stored orders; None when they cannot (the missing
    thing is the order itself or the order phase that leads to it, or the rows are skills or route steps)."""
    from ingestion.pipeline.sql import ORPHAN_CHECKS

    for check in ORPHAN_CHECKS:
        kind, entity, table, column, target_table, _ = check
        if (kind, entity) != (issue.kind, issue.entity):
            continue
        if table not in ORDER_OF_ROWS or target_table == "orders_manufacturingorder":
            return None
        if table == "orders_phaseassignment" and column == "order_phase_id":
            return None
        return check
    return None


def issue_order_ids(issue: DataQualityIssue) -> tuple[list[int], int] | None:
    """The stored orders a data-quality issue's rows belong to: (first ISSUE_ORDERS_LIMIT ids, total); None when the
    issue does not name rows of orders (a missing order, a skill or a route step)."""
    check = orphan_check_of(issue)
    if check is None:
        return None
    _, _, table, column, target_table, target_column = check
    order, join = ORDER_OF_ROWS[table]
    if issue.key == "*":
        where = f"t.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {target_table} x WHERE x.{target_column} = t.{column})"
        params = []
    else:
        try:
            params = [int(issue.key)]
        except ValueError:
            return None
        where = f"t.{column} = %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT {order} FROM {table} t{join} WHERE {where} AND {order} IN (SELECT id FROM orders_manufacturingorder) "
            f"ORDER BY 1", params)
        ids = [row[0] for row in cursor.fetchall()]
    return ids[:ISSUE_ORDERS_LIMIT], len(ids)
