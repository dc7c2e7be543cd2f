"""Choices of the ingestion domain."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    NOOP = "noop", _("No change (same file as the last successful run)")
    FAILED = "failed", _("Failed")


class RunTrigger(models.TextChoices):
    CLI = "cli", _("Command line")
    API = "api", _("API upload")
    UI = "ui", _("Dashboard upload")
    BEAT = "beat", _("Scheduled inbox watch")
    ADMIN = "admin", pgettext_lazy("run trigger", "Admin")


class RejectReason(models.TextChoices):
    BAD_ID = "bad_id", _("Unparseable id")
    BAD_DATE = "bad_date", _("Unparseable date")
    BAD_NUMBER = "bad_number", _("Unparseable number")
    MISSING_KEY = "missing_key", _("Missing key")
    DUPLICATE_KEY = "duplicate_key", _("Duplicate key in the same sheet")
    END_BEFORE_START = "end_before_start", _("End before start")
    BAD_SEVERITY = "bad_severity", _("Severity outside 1..3")
    VALUE_TOO_LONG = "value_too_long", _("Value too long")


REJECT_REASON_HELP = {
    RejectReason.BAD_ID: _("An id cell holds something that is not a whole number (ids may be int, 123.0 or '123')."),
    RejectReason.BAD_DATE: _("A date cell holds text that is not a date (accepted: Excel dates, 2023-04-05 10:31:00, 05/04/2023), or a year outside 1900..2100."),
    RejectReason.BAD_NUMBER: _("A numeric cell holds text that is not a number."),
    RejectReason.MISSING_KEY: _("A key column is empty, so the row cannot be identified."),
    RejectReason.DUPLICATE_KEY: _("Another row of the same sheet has the same key; the first one is kept."),
    RejectReason.END_BEFORE_START: _("FaseOf_Fim is before FaseOf_Inicio."),
    RejectReason.BAD_SEVERITY: _("OFCH_GRAVIDADE must be 1 (minor), 2 (major) or 3 (critical)."),
    RejectReason.VALUE_TOO_LONG: _("A text cell is longer than the column allows."),
}


class TriageStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("reject status", "Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    IGNORED = "ignored", _("Ignored")
    RESOLVED = "resolved", _("Resolved (row stored after re-validation or a corrected import)")
    SUPERSEDED = "superseded", _("Superseded (the row was fixed or is gone in a later run)")


# A reject in one of these is still live: a later run meeting the same row reuses it (one per identity).
LIVE_TRIAGE_STATUSES = (TriageStatus.OPEN, TriageStatus.ACKNOWLEDGED, TriageStatus.IGNORED)


class IssueKind(models.TextChoices):
    ORPHAN_PRODUCT = "orphan_product", _("Order names an unknown product")
    ORPHAN_PHASE = "orphan_phase", _("Row names an unknown catalogue phase")
    ORPHAN_ORDER = "orphan_order", _("Row names an unknown order")
    ORPHAN_ORDER_PHASE = "orphan_order_phase", _("Row names an unknown order phase")
    ORPHAN_EMPLOYEE = "orphan_employee", _("Row names an unknown employee")
    LOW_MATCH_RATE = "low_match_rate", _("Reference match rate below what an analysis needs")


class IssueStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("data-quality issue status", "Open")
    CLOSED = "closed", pgettext_lazy("data-quality issue status", "Closed")
