"""A succeeded ingestion run records the snapshot's as-of on the kernel's DataVersion (prodplan.asof reads it)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun
from prodplan.asof import record_data_as_of


@receiver(post_save, sender=IngestionRun, dispatch_uid="ingestion.record_data_as_of")
def _record_as_of(sender, instance: IngestionRun, **kwargs) -> None:
    """Whenever a run is saved as succeeded, the newest succeeded run's as-of is the data's (same transaction)."""
    if instance.status != RunStatus.SUCCEEDED:
        return
    newest = IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").values_list("as_of", flat=True).first()
    record_data_as_of(newest)
