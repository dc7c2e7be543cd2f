"""Choices of the ingestion domain."""

from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    NOOP = "noop", "No change (same file as the last successful run)"
    FAILED = "failed", "Failed"


class RunTrigger(models.TextChoices):
    CLI = "cli", "Command line"
    API = "api", "API upload"
    UI = "ui", "Dashboard upload"
    BEAT = "beat", "Scheduled inbox watch"
    ADMIN = "admin", "Admin"


class RejectReason(models.TextChoices):
    BAD_ID = "bad_id", "Unparseable id"
    BAD_DATE = "bad_date", "Unparseable date"
    BAD_NUMBER = "bad_number", "Unparseable number"
    MISSING_KEY = "missing_key", "Missing key"
    DUPLICATE_KEY = "duplicate_key", "Duplicate key in the same sheet"
    END_BEFORE_START = "end_before_start", "End before start"
    BAD_SEVERITY = "bad_severity", "Severity outside 1..3"
    VALUE_TOO_LONG = "value_too_long", "Value too long"


REJECT_REASON_HELP = {
    RejectReason.BAD_ID: "An id cell holds something that is not a whole number (ids may be int, 123.0 or '123').",
    RejectReason.BAD_DATE: "A date cell holds text that is not a date (accepted: Excel dates, 2023-04-05 10:31:00, 05/04/2023), or a year outside 1900..2100.",
    RejectReason.BAD_NUMBER: "A numeric cell holds text that is not a number.",
    RejectReason.MISSING_KEY: "A key column is empty, so the row cannot be identified.",
    RejectReason.DUPLICATE_KEY: "Another row of the same sheet has the same key; the first one is kept.",
    RejectReason.END_BEFORE_START: "FaseOf_Fim is before FaseOf_Inicio.",
    RejectReason.BAD_SEVERITY: "OFCH_GRAVIDADE must be 1 (minor), 2 (major) or 3 (critical).",
    RejectReason.VALUE_TOO_LONG: "A text cell is longer than the column allows.",
}


class TriageStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    IGNORED = "ignored", "Ignored"
    RESOLVED = "resolved", "Resolved (row stored after re-validation or a corrected import)"


class IssueKind(models.TextChoices):
    ORPHAN_PRODUCT = "orphan_product", "Order names an unknown product"
    ORPHAN_PHASE = "orphan_phase", "Row names an unknown catalogue phase"
    ORPHAN_ORDER = "orphan_order", "Row names an unknown order"
    ORPHAN_ORDER_PHASE = "orphan_order_phase", "Row names an unknown order phase"
    ORPHAN_EMPLOYEE = "orphan_employee", "Row names an unknown employee"
    LOW_MATCH_RATE = "low_match_rate", "Reference match rate below what an analysis needs"


class IssueStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"
