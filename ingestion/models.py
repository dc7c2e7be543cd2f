"""Ingestion audit: runs, per-sheet counts, rejected rows and data-quality issues."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from ingestion.choices import IssueKind, IssueStatus, RejectReason, RunStatus, RunTrigger, TriageStatus


class IngestionRun(models.Model):
    """One ingestion of one workbook file."""

    file_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=1024, blank=True, default="")
    file_size = models.BigIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64, db_index=True, blank=True, default="")
    sheet_sha256 = models.JSONField(default=dict, blank=True, help_text="SHA-256 of each sheet's cell values.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.CLI)
    allow_shrink = models.BooleanField(default=False, help_text="Allowed to delete more than 5% of a sheet's rows.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per pipeline step.")
    as_of = models.DateTimeField(null=True, blank=True, help_text="Snapshot time: the latest timestamp in the data.")
    counts = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True, help_text="Live progress per sheet while running.")
    profile = models.JSONField(default=dict, blank=True, help_text="Inspector profile of the workbook.")
    error = models.TextField(blank=True, default="")
    data_version = models.BigIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name = "ingestion run"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status}) {self.file_name}"


class SheetRun(models.Model):
    """Counts of one sheet in one run: rows read = loaded + rejected."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="sheets")
    sheet = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    rows_read = models.IntegerField(default=0)
    rows_loaded = models.IntegerField(default=0)
    rows_rejected = models.IntegerField(default=0)
    inserted = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    deleted = models.IntegerField(default=0)
    orphans = models.IntegerField(default=0)
    seconds = models.FloatField(default=0)
    reconciled = models.BooleanField(default=False, help_text="rows read = loaded + rejected")
    skipped = models.BooleanField(
        default=False, help_text="Unchanged since the last successful run (same sheet hash): not re-read, stored rows kept."
    )

    class Meta:
        verbose_name = "sheet run"
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "sheet"], name="ingestion_sheetrun_run_sheet")]

    def __str__(self) -> str:
        return f"{self.sheet} in run {self.run_id}"


class Reject(models.Model):
    """A workbook row that could not be stored as typed, for a data steward to triage."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="rejects")
    sheet = models.CharField(max_length=64, db_index=True)
    row_number = models.IntegerField(help_text="Excel row number (the header is row 1).")
    reason = models.CharField(max_length=32, choices=RejectReason.choices, db_index=True)
    column = models.CharField(max_length=64, blank=True, default="")
    message = models.TextField()
    original = models.JSONField(help_text="The row's original cell values, by header.")
    corrected = models.JSONField(
        null=True, blank=True, help_text="The values a steward last imported to fix the row (the original stays as read).")
    status = models.CharField(max_length=16, choices=TriageStatus.choices, default=TriageStatus.OPEN, db_index=True)
    triaged_at = models.DateTimeField(null=True, blank=True)
    triaged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name = "rejected row"
        ordering = ["run", "sheet", "row_number"]
        indexes = [models.Index(fields=["run", "sheet", "row_number"], name="ingestion_reject_run_row_idx")]

    def __str__(self) -> str:
        return f"{self.sheet} row {self.row_number}: {self.reason}"


class DataQualityIssue(models.Model):
    """A stored-but-suspect relationship (an orphan reference) or a low match rate, with counts."""

    kind = models.CharField(max_length=32, choices=IssueKind.choices, db_index=True)
    entity = models.CharField(max_length=64, help_text="Sheet (and column) the issue is about.")
    key = models.CharField(max_length=128, help_text="The unmatched value, or * for a sheet-wide figure.")
    detail = models.TextField(blank=True, default="")
    row_count = models.IntegerField(default=0, help_text="Rows affected in the last run that saw it.")
    measured = models.FloatField(null=True, blank=True, help_text="Measured rate, for match-rate issues.")
    sample = models.JSONField(default=list, blank=True)
    first_seen_run = models.ForeignKey(IngestionRun, null=True, on_delete=models.SET_NULL, related_name="+")
    last_seen_run = models.ForeignKey(IngestionRun, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=8, choices=IssueStatus.choices, default=IssueStatus.OPEN, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "data-quality issue"
        ordering = ["status", "kind", "-row_count"]
        constraints = [models.UniqueConstraint(fields=["kind", "entity", "key"], name="ingestion_dataqualityissue_key")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.entity} {self.key}"
