"""Kernel models: API keys for the REST clients, and the global data version."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.utils import timezone


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A client's API key; only its SHA-256 is stored, the raw key is shown once at creation."""

    name = models.CharField(max_length=100, help_text="Who uses this key (a client, not a person).")
    prefix = models.CharField(max_length=8, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"], name="prodplan_apikey_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def generate(cls, *, name: str) -> tuple[ApiKey, str]:
        raw = "pp_" + secrets.token_urlsafe(32)
        key = cls.objects.create(name=name, prefix=raw[:8], key_hash=hash_api_key(raw))
        return key, raw


class DataVersion(models.Model):
    """A single row whose counter every ingestion bumps (cache keys embed it), with the data's as-of.

    as_of is written by the app that loads the data (ingestion, when a run succeeds) and read by the kernel
    (prodplan.asof.data_as_of): the kernel never asks the loader."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.PositiveBigIntegerField(default=1)
    changed_at = models.DateTimeField(default=timezone.now)
    as_of = models.DateTimeField(null=True, blank=True,
                                 help_text="The snapshot's as-of time of the data loaded last (null: no data yet).")
    as_of_recorded_at = models.DateTimeField(null=True, blank=True,
                                             help_text="When that as-of was recorded (the load that stored it).")

    class Meta:
        verbose_name = "data version"

    def __str__(self) -> str:
        return f"data version {self.version}"
