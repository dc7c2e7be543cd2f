"""The as-of moment: 'now' is the workbook snapshot's time, not the wall clock."""

from __future__ import annotations

from datetime import datetime, time

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError


def data_as_of() -> datetime | None:
    """The as-of time recorded by the last successful ingestion, cached per data version (and in this process)."""
    from prodplan.cache import cached_in_process

    return cached_in_process("prodplan.data_as_of", _stored_as_of)


def _stored_as_of() -> datetime | None:
    from ingestion.choices import RunStatus
    from ingestion.models import IngestionRun

    return IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").values_list("as_of", flat=True).first()


def parse_as_of(raw: str | None) -> datetime | None:
    """Parse an ?as_of= value (date or datetime, Lisbon time when naive); None when absent."""
    if not raw:
        return None
    parsed = parse_datetime(raw)
    if parsed is None:
        day = parse_date(raw)
        if day is None:
            raise ValidationError({"as_of": f"'{raw}' is not a date (YYYY-MM-DD) or datetime (ISO 8601)."})
        parsed = datetime.combine(day, time(23, 59, 59))
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def resolve_as_of(request=None) -> datetime:
    """?as_of= when given, else the data's as-of time, else the wall clock (empty system)."""
    raw = request.query_params.get("as_of") if request is not None and hasattr(request, "query_params") else None
    return parse_as_of(raw) or data_as_of() or timezone.now()
