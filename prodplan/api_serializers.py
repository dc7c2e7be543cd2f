"""Output serializers every app shares in the OpenAPI schema: the honest figure(...) shape and NOT_SUPPORTED_BY_DATA."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from prodplan.gates import IMPUTED, NOT_SUPPORTED, OBSERVED, THEORETICAL

BASIS_CHOICES = [OBSERVED, THEORETICAL, IMPUTED]
BASIS_HELP = "What the figure stands on: observed (measured rows), theoretical (standards, a model) or imputed."
COVERAGE_HELP = "Share of rows that support the figure (null when nothing could support it)."

_FIGURES: dict[str, type[serializers.Serializer]] = {}


def basis_field(**kwargs) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=BASIS_CHOICES, help_text=BASIS_HELP, **kwargs)


def figure_serializer(name: str, value: serializers.Field, *, doc: str = "", **extra: serializers.Field) -> type:
    """The serializer class `<name>Serializer` (component `<name>`) of prodplan.gates.figure(value, basis, coverage,
    **extra): `value` is the field of the figure's value, `extra` the fields of the keys the figure adds.

    One class per name: asking twice for the same name returns the first class (a name is one shape)."""
    if name in _FIGURES:
        return _FIGURES[name]
    attrs = {
        "__doc__": doc or f"A figure ({name}): the value, its basis and its coverage.",
        "__module__": __name__,
        "value": value,
        "basis": basis_field(),
        "coverage": serializers.FloatField(allow_null=True, help_text=COVERAGE_HELP),
        **extra,
    }
    _FIGURES[name] = type(f"{name}Serializer", (serializers.Serializer,), attrs)
    return _FIGURES[name]


NumberFigureSerializer = figure_serializer("NumberFigure", serializers.FloatField(allow_null=True),
                                           doc="A number with its basis and coverage.")
NotedNumberFigureSerializer = figure_serializer(
    "NotedNumberFigure", serializers.FloatField(allow_null=True), doc="A number with its basis, coverage and a note.",
    note=serializers.CharField())


class NotSupportedSerializer(serializers.Serializer):
    """NOT_SUPPORTED_BY_DATA (HTTP 200): the data cannot back the feature; names what is missing and what was measured."""

    status = serializers.ChoiceField(choices=[NOT_SUPPORTED])
    feature = serializers.CharField()
    reason = serializers.CharField()
    measured = serializers.FloatField(allow_null=True, help_text="The measured rate the gate compares, if any.")
    threshold = serializers.FloatField(allow_null=True, help_text="The gate's threshold, if any.")


def not_supported_serializer(name: str, **extra: serializers.Field) -> type:
    """NotSupportedSerializer with the keys one feature adds (a component of its own named `name`)."""
    return type(f"{name}Serializer", (NotSupportedSerializer,), {"__module__": __name__, "__doc__": NotSupportedSerializer.__doc__, **extra})


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}], "nullable": True})
class IdOrLabelField(serializers.Field):
    """An integer id or a text key (e.g. a product id or a family code), or null."""

    def to_representation(self, value):
        return value


class UnavailableSerializer(serializers.Serializer):
    """503 (prodplan.api_errors): the database or the task queue cannot be reached; nothing was done, retry."""

    status = serializers.ChoiceField(choices=["unavailable"])
    component = serializers.ChoiceField(choices=["database", "task queue"])
    detail = serializers.CharField()


class DetailSerializer(serializers.Serializer):
    """An error answer with a message."""

    detail = serializers.CharField()


def one_of(name: str, *answers: type) -> PolymorphicProxySerializer:
    """The schema of an endpoint that answers one of several shapes (e.g. the figure or NOT_SUPPORTED_BY_DATA),
    component `name`, told apart by their keys (no type field)."""
    return PolymorphicProxySerializer(component_name=name, serializers=list(answers), resource_type_field_name=None)
