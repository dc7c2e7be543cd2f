"""Choices of the orders domain."""

from django.db import models


class ProductFamily(models.TextChoices):
    K1 = "K1", "K1 kayak"
    K2 = "K2", "K2 kayak"
    K4 = "K4", "K4 kayak"
    C1 = "C1", "C1 canoe"
    C2 = "C2", "C2 canoe"
    C4 = "C4", "C4 canoe"
    OTHER = "OTHER", "Other"
    UNKNOWN = "UNKNOWN", "Unknown product"


class OrderStatus(models.TextChoices):
    DONE = "DONE", "Done"
    CREATED = "CREATED", "Created (no phase started)"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    AT_RISK = "AT_RISK", "At risk (older than the product's p75 lead time)"
    LATE = "LATE", "Late (older than the product's p90 lead time)"


class Shift(models.IntegerChoices):
    FIRST = 1, "Shift 1"
    SECOND = 2, "Shift 2"
    THIRD = 3, "Shift 3"
