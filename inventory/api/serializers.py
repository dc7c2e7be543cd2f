"""Query-parameter serializers of the SmartInventory API."""

from __future__ import annotations

from rest_framework import serializers

from orders.api.serializers import PlacementCountsSerializer
from prodplan.api_serializers import figure_serializer, not_supported_serializer
from prodplan.asof import AsOfQuerySerializer


class GelcoatQuerySerializer(AsOfQuerySerializer):
    period = serializers.ChoiceField(choices=[("week", "week"), ("month", "month")], required=False, default="month")


# --- response shapes (schema only: the views return the selectors' dicts) -------------------------------------

class WipPhaseSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    orders = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    waiting = serializers.IntegerField()
    not_started = serializers.IntegerField()


class WipProductSerializer(serializers.Serializer):
    product_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    family = serializers.CharField(help_text="Product family, or UNKNOWN for an orphan product id.")
    known_product = serializers.BooleanField()
    orders = serializers.IntegerField()


class WipFamilySerializer(serializers.Serializer):
    family = serializers.CharField(help_text="Product family, or UNKNOWN.")
    orders = serializers.IntegerField()


WipTotalFigureSerializer = figure_serializer(
    "WipTotalFigure", serializers.IntegerField(), stalled_orders_excluded=serializers.IntegerField(),
    abandoned_orders_excluded=serializers.IntegerField())
WipByPhaseFigureSerializer = figure_serializer(
    "WipByPhaseFigure", WipPhaseSerializer(many=True), placement=PlacementCountsSerializer(), note=serializers.CharField())
WipByProductFigureSerializer = figure_serializer("WipByProductFigure", WipProductSerializer(many=True),
                                                 note=serializers.CharField())
WipByFamilyFigureSerializer = figure_serializer("WipByFamilyFigure", WipFamilySerializer(many=True))


class WipResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    order_state_rule = serializers.CharField()
    total_orders = WipTotalFigureSerializer()
    by_phase = WipByPhaseFigureSerializer()
    by_product = WipByProductFigureSerializer()
    by_family = WipByFamilyFigureSerializer()
    stalled_orders_excluded = serializers.IntegerField()
    abandoned_orders_excluded = serializers.IntegerField()
    placement = PlacementCountsSerializer()


class MatchedPhaseSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField()
    name = serializers.CharField()


class ExcludedPhaseSerializer(MatchedPhaseSerializer):
    because = serializers.CharField()


class PhaseRuleSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["demoulding", "gelcoat"])
    rule = serializers.CharField()
    matched_phases = MatchedPhaseSerializer(many=True)
    excluded_phases = ExcludedPhaseSerializer(many=True)


class MassPhaseSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    orders = serializers.IntegerField()
    weighed = serializers.IntegerField()
    mass_kg = serializers.FloatField()


class MassFamilySerializer(serializers.Serializer):
    family = serializers.CharField()
    orders = serializers.IntegerField()
    weighed = serializers.IntegerField()
    mass_kg = serializers.FloatField()


class OrphanProductSerializer(serializers.Serializer):
    product_id = serializers.IntegerField(allow_null=True)
    orders = serializers.IntegerField()


class WipOrphansSerializer(serializers.Serializer):
    orders = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)
    products = OrphanProductSerializer(many=True)
    order_ids = serializers.ListField(child=serializers.IntegerField())
    order_ids_truncated = serializers.BooleanField()
    note = serializers.CharField()


MassTotalFigureSerializer = figure_serializer(
    "MassTotalFigure", serializers.FloatField(), wip_orders=serializers.IntegerField(),
    known_product_orders=serializers.IntegerField(), weighed_orders=serializers.IntegerField(),
    weight_coverage=serializers.FloatField(allow_null=True), orders_before_demoulding=serializers.IntegerField(),
    orders_after_demoulding=serializers.IntegerField(), stalled_orders_excluded=serializers.IntegerField(),
    abandoned_orders_excluded=serializers.IntegerField(), note=serializers.CharField())
MassByPhaseFigureSerializer = figure_serializer("MassByPhaseFigure", MassPhaseSerializer(many=True))
MassByFamilyFigureSerializer = figure_serializer("MassByFamilyFigure", MassFamilySerializer(many=True))


class WipMassResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    order_state_rule = serializers.CharField()
    demoulding_phases = PhaseRuleSerializer()
    total_mass_kg = MassTotalFigureSerializer()
    by_phase = MassByPhaseFigureSerializer()
    by_family = MassByFamilyFigureSerializer()
    orphans = WipOrphansSerializer()


class GelcoatPeriodSerializer(serializers.Serializer):
    period_start = serializers.DateField()
    orders = serializers.IntegerField()
    orders_known_product = serializers.IntegerField()
    orders_with_quantities = serializers.IntegerField()
    deck_qty = serializers.FloatField()
    hull_qty = serializers.FloatField()
    theoretical_qty = serializers.FloatField()
    coverage = serializers.FloatField(allow_null=True)


GelcoatTotalFigureSerializer = figure_serializer(
    "GelcoatTotalFigure", serializers.FloatField(), orders=serializers.IntegerField(),
    orders_with_quantities=serializers.IntegerField())
GelcoatSeriesFigureSerializer = figure_serializer("GelcoatSeriesFigure", GelcoatPeriodSerializer(many=True))


class GelcoatResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    period = serializers.ChoiceField(choices=["week", "month"])
    rule = serializers.CharField()
    gelcoat_phases = PhaseRuleSerializer()
    total_theoretical_qty = GelcoatTotalFigureSerializer()
    series = GelcoatSeriesFigureSerializer()


PhaseGateNotSupportedSerializer = not_supported_serializer(
    "PhaseGateNotSupported", missing_data=serializers.CharField(), phase_rule=PhaseRuleSerializer())
UnsupportedFeatureSerializer = not_supported_serializer(
    "UnsupportedFeature", missing_data=serializers.ListField(child=serializers.CharField()),
    sheets_checked=serializers.ListField(child=serializers.CharField()),
    sheets_with_stock_data=serializers.ListField(child=serializers.CharField()),
    alternative=serializers.CharField())
