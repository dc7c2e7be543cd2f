"""The API's JSON parser: DRF's, with a body nested too deep for Python's parser (RecursionError) a 400 like any
other malformed JSON, not a 500."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except (RecursionError, ValueError) as exc:
            raise ParseError(f"JSON parse error - {type(exc).__name__}: the body is not JSON this API accepts "
                             "(malformed, or nested too deep).") from exc
