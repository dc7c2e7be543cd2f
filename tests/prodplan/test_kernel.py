"""The kernel: settings start no server, the data's as-of is the kernel's record, one as-of rule for API and pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework import serializers

from prodplan.asof import AsOfField, InvalidAsOf, resolve_as_of

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_settings_starts_no_embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"PRODPLAN_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "prodplan.settings"})
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.EMBEDDED_DATABASE, settings.DATABASES['default']['ENGINE'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "prodplan.embedded_psqlextra"]
    assert not (tmp_path / "pgdata").exists()  # pgserver creates it when it starts


@pytest.mark.django_db
def test_the_data_as_of_is_recorded_on_the_kernel_by_the_load(ingested):
    from prodplan.asof import data_as_of
    from prodplan.models import DataVersion

    recorded = DataVersion.objects.values_list("as_of", flat=True).get(pk=1)
    assert recorded == ingested["as_of"] == data_as_of()


@pytest.mark.django_db
def test_no_load_no_as_of(db):
    from ingestion.models import IngestionRun
    from prodplan.asof import data_as_of

    assert not IngestionRun.objects.exists() and data_as_of() is None


def test_strict_gives_only_what_the_query_says():
    assert resolve_as_of({}, strict=True) is None
    assert resolve_as_of({"as_of": ""}, strict=True) is None
    assert resolve_as_of({"as_of": "2025-12-15"}, strict=True).isoformat() == "2025-12-15T23:59:59+00:00"
    with pytest.raises(InvalidAsOf):
        resolve_as_of({"as_of": "2025-02-30"}, strict=True)


@pytest.mark.django_db
def test_absent_falls_back_to_the_data_then_the_clock(ingested):
    assert resolve_as_of({}) == ingested["as_of"]
    assert resolve_as_of(None) == ingested["as_of"]
    with pytest.raises(InvalidAsOf):
        resolve_as_of({"as_of": "amanhã"})  # never a fallback for a value given


def test_the_serializer_field_applies_the_same_rule():
    class Query(serializers.Serializer):
        as_of = AsOfField()

    good = Query(data={"as_of": "2025-12-15T10:00:00"})
    assert good.is_valid() and good.validated_data["as_of"].isoformat() == "2025-12-15T10:00:00+00:00"
    bad = Query(data={"as_of": "9999-12-31"})
    assert not bad.is_valid() and "2000-01-01 .. 2100-12-31" in str(bad.errors["as_of"][0])
    assert Query(data={}).is_valid()
