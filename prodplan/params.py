"""Integer ids in a page's query string (?after=, ?run=): ASCII digits only, else a 400 naming the parameter.

str.isdigit() is not the test: '²'.isdigit() is True and int('²') raises (a 500)."""

from __future__ import annotations

import re

from django.core.exceptions import BadRequest
from django.utils.translation import gettext, gettext_noop

_ID = re.compile(r"[0-9]{1,18}")  # a positive id that fits a bigint
_NOT_AN_ID = gettext_noop("'%(value)s' is not an id (digits 0-9 only).")
_ECHO_MAX = 40


class InvalidParam(BadRequest):
    """A query parameter that is not what the page accepts: a 400 page naming it (prodplan.api_errors.bad_request)."""

    def __init__(self, param: str, raw, template: str = _NOT_AN_ID) -> None:
        text = str(raw)
        self.param = param
        self.value = text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + "…"
        self.template = template
        super().__init__(self.message())

    def message(self) -> str:
        return self.template % {"value": self.value}

    def localized_message(self) -> str:
        return gettext(self.template) % {"value": self.value}


def is_id(raw) -> bool:
    return isinstance(raw, str) and _ID.fullmatch(raw) is not None


def id_param(request, param: str) -> int | None:
    """?param=<id> as an int; None when absent or empty; InvalidParam (400) for anything but ASCII digits."""
    raw = request.GET.get(param, "")
    if raw == "":
        return None
    if not is_id(raw):
        raise InvalidParam(param, raw)
    return int(raw)


def id_params(request, param: str) -> list[int]:
    """Every ?param=<id> (repeatable); empty values skipped; InvalidParam (400) for anything but ASCII digits."""
    values = [raw for raw in request.GET.getlist(param) if raw != ""]
    for raw in values:
        if not is_id(raw):
            raise InvalidParam(param, raw)
    return [int(raw) for raw in values]
