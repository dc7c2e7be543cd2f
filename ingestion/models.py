"""Ingestion audit: runs, per-sheet counts, rejected rows and data-quality issues."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ingestion.choices import (
    LIVE_TRIAGE_STATUSES,
    IssueKind,
    IssueStatus,
    RejectReason,
    RunStatus,
    RunTrigger,
    TriageStatus,
)


class IngestionRun(models.Model):
    """One ingestion of one workbook file."""

    file_name = models.CharField(_("file name"), max_length=255)
    file_path = models.CharField(_("file path"), max_length=1024, blank=True, default="")
    file_size = models.BigIntegerField(_("file size (bytes)"), null=True, blank=True)
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, db_index=True, blank=True, default="")
    sheet_sha256 = models.JSONField(_("sheet SHA-256"), default=dict, blank=True, help_text=_("SHA-256 of each sheet's cell values."))
    status = models.CharField(_("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True)
    trigger = models.CharField(_("started by"), max_length=16, choices=RunTrigger.choices, default=RunTrigger.CLI)
    allow_shrink = models.BooleanField(_("shrink allowed"), default=False, help_text=_("Allowed to delete more than 5% of a sheet's rows."))
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_seconds = models.FloatField(_("duration (seconds)"), null=True, blank=True)
    timings = models.JSONField(_("timings"), default=dict, blank=True, help_text=_("Seconds per pipeline step."))
    as_of = models.DateTimeField(_("data as of"), null=True, blank=True, help_text=_("Snapshot time: the latest timestamp in the data."))
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    progress = models.JSONField(_("progress"), default=dict, blank=True, help_text=_("Live progress per sheet while running."))
    profile = models.JSONField(_("profile"), default=dict, blank=True, help_text=_("Inspector profile of the workbook."))
    error = models.TextField(_("error"), blank=True, default="")
    data_version = models.BigIntegerField(_("data version"), null=True, blank=True)
    task_id = models.CharField(_("task id"), max_length=64, blank=True, default="")

    class Meta:
        verbose_name = _("ingestion run")
        verbose_name_plural = _("ingestion runs")
        ordering = ["-id"]

    def __str__(self) -> str:
        return gettext("Run %(id)s (%(status)s) %(file)s") % {"id": self.pk, "status": self.get_status_display(), "file": self.file_name}


class SheetRun(models.Model):
    """Counts of one sheet in one run: rows read = loaded + rejected."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="sheets", verbose_name=_("run"))
    sheet = models.CharField(_("sheet"), max_length=64)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True, default="")
    rows_read = models.IntegerField(_("rows read"), default=0)
    rows_loaded = models.IntegerField(_("rows loaded"), default=0)
    rows_rejected = models.IntegerField(_("rows rejected"), default=0)
    inserted = models.IntegerField(_("inserted"), default=0)
    updated = models.IntegerField(_("updated"), default=0)
    unchanged = models.IntegerField(_("unchanged"), default=0)
    deleted = models.IntegerField(_("deleted"), default=0)
    orphans = models.IntegerField(_("orphans"), default=0)
    seconds = models.FloatField(_("seconds"), default=0)
    reconciled = models.BooleanField(_("reconciled"), default=False, help_text=_("rows read = loaded + rejected"))
    skipped = models.BooleanField(
        _("skipped"), default=False,
        help_text=_("Unchanged since the last successful run (same sheet hash): not re-read, stored rows kept."),
    )

    class Meta:
        verbose_name = _("sheet run")
        verbose_name_plural = _("sheet runs")
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "sheet"], name="ingestion_sheetrun_run_sheet")]

    def __str__(self) -> str:
        return gettext("%(sheet)s in run %(run)s") % {"sheet": self.sheet, "run": self.run_id}


class Reject(models.Model):
    """A workbook row that could not be stored as typed, for a data steward to triage."""

    # The last run that met the row (a later run meeting the same row moves the reject to itself).
    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="rejects", verbose_name=_("run"))
    first_seen_run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                       verbose_name=_("first seen in run"))
    times_seen = models.IntegerField(_("runs that met it"), default=1)
    closed_in_run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                      verbose_name=_("superseded by run"))
    sheet = models.CharField(_("sheet"), max_length=64, db_index=True)
    identity = models.CharField(
        _("identity"), max_length=200, default="", blank=True,
        help_text=_("The row's key in its sheet (k:…), or a hash of its cells when it has no usable key (h:…); "
                    "#n marks the n-th row of one run with the same identity."))
    row_number = models.IntegerField(_("row number"), help_text=_("Excel row number (the header is row 1)."))
    reason = models.CharField(_("reason"), max_length=32, choices=RejectReason.choices, db_index=True)
    column = models.CharField(_("column"), max_length=64, blank=True, default="")
    message = models.TextField(_("message"))
    original = models.JSONField(_("original row"), help_text=_("The row's original cell values, by header."))
    corrected = models.JSONField(
        _("corrected row"), null=True, blank=True,
        help_text=_("The values a steward last imported to fix the row (the original stays as read)."))
    status = models.CharField(_("status"), max_length=16, choices=TriageStatus.choices, default=TriageStatus.OPEN, db_index=True)
    triaged_at = models.DateTimeField(_("triaged at"), null=True, blank=True)
    triaged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   verbose_name=_("triaged by"))

    class Meta:
        verbose_name = _("rejected row")
        verbose_name_plural = _("rejected rows")
        ordering = ["run", "sheet", "row_number"]
        indexes = [models.Index(fields=["run", "sheet", "row_number"], name="ingestion_reject_run_row_idx")]
        constraints = [models.UniqueConstraint(
            fields=["sheet", "identity"], condition=models.Q(status__in=[s.value for s in LIVE_TRIAGE_STATUSES]),
            name="ingestion_reject_live_identity")]

    def __str__(self) -> str:
        return gettext("%(sheet)s row %(row)s: %(reason)s") % {
            "sheet": self.sheet, "row": self.row_number, "reason": self.get_reason_display()}


class DataQualityIssue(models.Model):
    """A stored-but-suspect relationship (an orphan reference) or a low match rate, with counts."""

    kind = models.CharField(_("kind"), max_length=32, choices=IssueKind.choices, db_index=True)
    entity = models.CharField(_("sheet.column"), max_length=64, help_text=_("Sheet (and column) the issue is about."))
    key = models.CharField(_("value"), max_length=128, help_text=_("The unmatched value, or * for a sheet-wide figure."))
    detail = models.TextField(_("detail"), blank=True, default="")
    row_count = models.IntegerField(_("rows affected"), default=0, help_text=_("Rows affected in the last run that saw it."))
    measured = models.FloatField(_("measured rate"), null=True, blank=True, help_text=_("Measured rate, for match-rate issues."))
    sample = models.JSONField(_("sample"), default=list, blank=True)
    first_seen_run = models.ForeignKey(IngestionRun, null=True, on_delete=models.SET_NULL, related_name="+",
                                       verbose_name=_("first seen in run"))
    last_seen_run = models.ForeignKey(IngestionRun, null=True, on_delete=models.SET_NULL, related_name="+",
                                      verbose_name=_("last seen in run"))
    status = models.CharField(_("status"), max_length=8, choices=IssueStatus.choices, default=IssueStatus.OPEN, db_index=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("data-quality issue")
        verbose_name_plural = _("data-quality issues")
        ordering = ["status", "kind", "-row_count"]
        constraints = [models.UniqueConstraint(fields=["kind", "entity", "key"], name="ingestion_dataqualityissue_key")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.entity} {self.key}"
