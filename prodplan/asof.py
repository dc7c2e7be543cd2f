"""The as-of moment: 'now' is the workbook snapshot's time, not the wall clock.

One rule for every `as_of` a client gives (API query or body, page query, command option): a date
(YYYY-MM-DD) or an ISO 8601 datetime (Lisbon time when naive) whose date lies in the accepted range
AS_OF_MIN .. AS_OF_MAX. Anything else is a 400 naming the parameter and that range, never a 500 and
never a silent fallback. The range is fixed (no database needed to check it): the factory's data
starts well after 2000, and the bounds keep every conversion (time zones, +/- a few weeks of horizon)
far from the ends of Python's datetime (years 1 and 9999), where they overflow.
"""

from __future__ import annotations

from datetime import date, datetime, time

from django.core.exceptions import BadRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext, gettext_noop
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from prodplan.cache import versioned_cache
from prodplan.models import DataVersion

AS_OF_MIN = date(2000, 1, 1)
AS_OF_MAX = date(2100, 12, 31)
AS_OF_RANGE = f"{AS_OF_MIN.isoformat()} .. {AS_OF_MAX.isoformat()}"
AS_OF_HELP = (f"Date (YYYY-MM-DD) or ISO 8601 datetime (Lisbon time when naive) from {AS_OF_MIN.isoformat()} "
              f"to {AS_OF_MAX.isoformat()}; anything else is a 400.")

_NOT_A_DATE = gettext_noop("'%(value)s' is not a valid date (YYYY-MM-DD) or datetime (ISO 8601); "
                           "the accepted range is %(min)s .. %(max)s.")
_OUT_OF_RANGE = gettext_noop("'%(value)s' is outside the accepted range %(min)s .. %(max)s.")
_ECHO_MAX = 40  # characters of the rejected value repeated in the message


class InvalidAsOf(BadRequest):
    """An as_of value that is not a date/datetime or lies outside AS_OF_MIN .. AS_OF_MAX.

    A BadRequest: raised from a page view it becomes a 400 page (prodplan.api_errors.bad_request);
    the API gets it as a DRF ValidationError through parse_as_of."""

    param = "as_of"

    def __init__(self, raw, *, out_of_range: bool) -> None:
        text = str(raw)
        self.value = text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + "…"
        self.template = _OUT_OF_RANGE if out_of_range else _NOT_A_DATE
        super().__init__(self.message())

    def _params(self) -> dict:
        return {"value": self.value, "min": AS_OF_MIN.isoformat(), "max": AS_OF_MAX.isoformat()}

    def message(self) -> str:
        """English, as the API's own messages are."""
        return self.template % self._params()

    def localized_message(self) -> str:
        """In the active language (pages: Portuguese first)."""
        return gettext(self.template) % self._params()


@versioned_cache("prodplan.data_as_of", in_process=True)
def data_as_of() -> datetime | None:
    """The data's as-of time (recorded on DataVersion by the last successful load), cached per data version (and in
    this process)."""
    return DataVersion.objects.filter(pk=1).values_list("as_of", flat=True).first()


def record_data_as_of(as_of: datetime | None) -> None:
    """Record the loaded data's as-of on the kernel (the loader calls it inside its transaction)."""
    DataVersion.objects.update_or_create(pk=1, defaults={"as_of": as_of, "as_of_recorded_at": timezone.now()})


def as_of_from(raw) -> datetime | None:
    """Parse a given as_of value (date or datetime, Lisbon time when naive); None when absent or blank.

    Raises InvalidAsOf for text, impossible dates (2025-02-30, 2025-13-01T00:00) and dates outside
    AS_OF_MIN .. AS_OF_MAX. The range is checked on the date as written, before any time-zone conversion."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise InvalidAsOf(raw, out_of_range=False)
    try:
        # A bare date is the end of that day (Python 3.11's parse_datetime would read it as midnight).
        day = parse_date(raw) if len(raw) == 10 else None
        parsed = datetime.combine(day, time(23, 59, 59)) if day is not None else parse_datetime(raw)
        if parsed is None:
            raise InvalidAsOf(raw, out_of_range=False)
    except ValueError as exc:  # well formed but impossible: month 13, 30 February, offset past 24 h
        raise InvalidAsOf(raw, out_of_range=False) from exc
    if not AS_OF_MIN <= parsed.date() <= AS_OF_MAX:
        raise InvalidAsOf(raw, out_of_range=True)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def parse_as_of(raw) -> datetime | None:
    """as_of_from for the API: an invalid value is a DRF ValidationError (400 {"as_of": [message]})."""
    try:
        return as_of_from(raw)
    except InvalidAsOf as exc:
        raise ValidationError({InvalidAsOf.param: [exc.message()]}) from exc


def resolve_as_of(query=None, *, strict: bool = False) -> datetime | None:
    """The one as_of of a request, for API views and pages alike: query["as_of"] (a QueryDict, request.GET,
    request.query_params or a parsed body) by the one rule above.

    Absent or blank: strict=False gives the data's as-of, else the wall clock (an empty system); strict=True
    gives None (the caller has its own meaning for "no as_of"). An invalid value raises InvalidAsOf either way:
    a BadRequest, answered as a 400 naming as_of and the range by prodplan.api_errors (the site's page, or JSON
    {"as_of": [message]} under /api/)."""
    raw = query.get(InvalidAsOf.param) if query is not None else None
    given = as_of_from(raw)
    if given is not None or strict:
        return given
    return data_as_of() or timezone.now()


@extend_schema_field(OpenApiTypes.STR)
class AsOfField(serializers.Field):
    """The one serializer field for as_of (query parameters and bodies): the rule above, a datetime or None."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("help_text", AS_OF_HELP + " Default: the data's as-of time.")
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> datetime | None:
        try:
            return as_of_from(data)
        except InvalidAsOf as exc:
            raise serializers.ValidationError(exc.message(), code="invalid") from exc

    def to_representation(self, value):
        return value.isoformat() if value is not None else None


class AsOfQuerySerializer(serializers.Serializer):
    """The as_of query parameter alone; endpoints with more parameters subclass it."""

    as_of = AsOfField()
