"""Filter fields shared by the API filtersets: datetimes PostgreSQL can store (a UTC offset beyond ±15:59 was a 500)."""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

# PostgreSQL rejects a time zone displacement outside this range (Python accepts up to ±23:59).
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


class StorableIsoDateTimeField(IsoDateTimeField):
    def clean(self, value):
        cleaned = super().clean(value)
        offset = cleaned.utcoffset() if cleaned is not None else None
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError(_("The UTC offset must lie between -15:59 and +15:59."), code="offset")
        return cleaned


class StorableIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 datetime filter whose value PostgreSQL accepts; anything else is a 400 naming the parameter."""

    field_class = StorableIsoDateTimeField
