"""The project's cursor pagination: DRF's, with a cursor that cannot be decoded, or whose position is not a value
of the ordering field, answered 400 {"cursor": [...]} (DRF answers the first 404 and the second 500)."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

INVALID_CURSOR = "Invalid cursor: follow the next/previous links of a previous page."


class ValidatedCursorPagination(CursorPagination):
    invalid_cursor_message = INVALID_CURSOR

    def paginate_queryset(self, queryset, request, view=None):
        self._model = getattr(queryset, "model", None)
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from exc
        if cursor is None or cursor.position is None or self._model is None:
            return cursor
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:  # an annotation: nothing to check it against
            return cursor
        try:
            field.run_validators(field.to_python(cursor.position))  # integers: also the database column's range
        except (DjangoValidationError, TypeError, ValueError, OverflowError) as exc:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from exc
        return cursor
