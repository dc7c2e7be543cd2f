"""Choices of the quality domain."""

from django.db import models


class Severity(models.IntegerChoices):
    MINOR = 1, "Minor"
    MAJOR = 2, "Major"
    CRITICAL = 3, "Critical"
