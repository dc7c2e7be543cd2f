"""Choices of the what-if domain."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class PriorityRule(models.TextChoices):
    FIFO = "FIFO", _("First in, first out")
    SPT = "SPT", _("Shortest processing time first")
    LPT = "LPT", _("Longest processing time first")
    OLDEST_FIRST = "OLDEST_FIRST", _("Oldest order first")
    RISK_FIRST = "RISK_FIRST", _("Highest risk score first")
