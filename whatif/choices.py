"""Choices of the what-if domain."""

from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PriorityRule(models.TextChoices):
    FIFO = "FIFO", "First in, first out"
    SPT = "SPT", "Shortest processing time first"
    LPT = "LPT", "Longest processing time first"
    OLDEST_FIRST = "OLDEST_FIRST", "Oldest order first"
    RISK_FIRST = "RISK_FIRST", "Highest risk score first"
