"""Query-parameter serializers of the quality API (validation and OpenAPI parameters)."""

from __future__ import annotations

from rest_framework import serializers

from orders.choices import ProductFamily
from prodplan.asof import AsOfQuerySerializer
from quality.choices import Severity


class OverviewQuerySerializer(AsOfQuerySerializer):
    top = serializers.IntegerField(required=False, min_value=1, max_value=200, default=20,
                                   help_text="How many error descriptions in the Pareto.")


class RiskQuerySerializer(AsOfQuerySerializer):
    phase = serializers.IntegerField(required=False, help_text="Catalogue phase id (Fase_Id). Without it: the risk "
                                     "table by product family and phase (narrowed by product or family).")
    product = serializers.IntegerField(required=False, help_text="Product id (Produto_Id).")
    family = serializers.ChoiceField(choices=ProductFamily.choices, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False, default=Severity.MINOR,
                                       help_text="Minimum severity s: the probability is of an error of severity >= s.")
    attribution = serializers.ChoiceField(choices=[("found", "found"), ("culprit", "culprit")], required=False,
                                          default="found",
                                          help_text="Attribute errors to the phase where found or to the culprit.")
    min_sample = serializers.IntegerField(required=False, min_value=1, default=30,
                                          help_text="Smallest sample a level needs to answer before falling back.")
