"""Backfill the kernel's DataVersion.as_of from the newest succeeded run (ingestion writes it from now on)."""

from django.db import migrations
from django.utils import timezone


def record(apps, schema_editor):
    IngestionRun = apps.get_model("ingestion", "IngestionRun")
    DataVersion = apps.get_model("prodplan", "DataVersion")
    as_of = (IngestionRun.objects.filter(status="succeeded").order_by("-id").values_list("as_of", flat=True).first())
    if as_of is not None:
        DataVersion.objects.update_or_create(pk=1, defaults={"as_of": as_of, "as_of_recorded_at": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0003_reject_corrected"),
        ("prodplan", "0002_dataversion_as_of"),
    ]

    # Reverse: nothing to undo here (prodplan 0002's reverse drops the column).
    operations = [migrations.RunPython(record, migrations.RunPython.noop)]
