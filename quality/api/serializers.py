"""Query-parameter serializers of the quality API (validation and OpenAPI parameters)."""

from __future__ import annotations

from rest_framework import serializers

from orders.choices import ProductFamily
from prodplan.api_serializers import IdOrLabelField, figure_serializer
from prodplan.asof import AsOfQuerySerializer
from quality.choices import Severity


class PeriodQuerySerializer(AsOfQuerySerializer):
    """as_of and the quality period (quality.selectors.period_bounds): errors dated in [date_from, date_to], both days
    included; by product: the orders created in it."""

    date_from = serializers.DateField(required=False, help_text="First day of the period (YYYY-MM-DD, included).")
    date_to = serializers.DateField(required=False, help_text="Last day of the period (YYYY-MM-DD, included).")

    def validate(self, attrs: dict) -> dict:
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": "date_to is before date_from."})
        return attrs


class OverviewQuerySerializer(PeriodQuerySerializer):
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


# --- response shapes (schema only: the views return the selectors' dicts) -------------------------------------

class SeverityCountSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    label = serializers.CharField()
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class PhaseCountSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class MonthCountSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM (Europe/Lisbon).")
    count = serializers.IntegerField()
    by_severity = serializers.DictField(child=serializers.IntegerField(), help_text="Severity -> errors.")


class ParetoRowSerializer(serializers.Serializer):
    description = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)
    cumulative_share = serializers.FloatField(allow_null=True)


IntFigureSerializer = figure_serializer("IntFigure", serializers.IntegerField(), doc="A count with basis and coverage.")
ErrorsPerOrderFigureSerializer = figure_serializer(
    "ErrorsPerOrderFigure", serializers.FloatField(allow_null=True), numerator=serializers.IntegerField(),
    denominator=serializers.IntegerField(), note=serializers.CharField())
SeveritySplitFigureSerializer = figure_serializer("SeveritySplitFigure", SeverityCountSerializer(many=True))
FoundPhaseFigureSerializer = figure_serializer("FoundPhaseFigure", PhaseCountSerializer(many=True))
CulpritPhaseFigureSerializer = figure_serializer(
    "CulpritPhaseFigure", PhaseCountSerializer(many=True), culprit_filled=serializers.IntegerField(),
    culprit_resolved=serializers.IntegerField(), culprit_filled_share=serializers.FloatField(allow_null=True),
    note=serializers.CharField())
MonthlyTrendFigureSerializer = figure_serializer(
    "MonthlyTrendFigure", MonthCountSerializer(many=True), undated=serializers.IntegerField(),
    time_rule=serializers.CharField())
ParetoFigureSerializer = figure_serializer(
    "ParetoFigure", ParetoRowSerializer(many=True), top=serializers.IntegerField(),
    distinct_descriptions=serializers.IntegerField())


class QualityOverviewResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    total_errors = IntFigureSerializer()
    orders = serializers.IntegerField()
    orders_with_errors = serializers.IntegerField()
    errors_per_order = ErrorsPerOrderFigureSerializer()
    by_severity = SeveritySplitFigureSerializer()
    by_found_phase = FoundPhaseFigureSerializer()
    by_culprit_phase = CulpritPhaseFigureSerializer()
    trend_by_month = MonthlyTrendFigureSerializer()
    pareto = ParetoFigureSerializer()


class PhaseErrorsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    rate_per_execution = serializers.FloatField(allow_null=True)
    by_severity = SeverityCountSerializer(many=True)


class QualityPhaseSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)
    sequence = serializers.IntegerField(allow_null=True)
    known_phase = serializers.BooleanField()
    executions = serializers.IntegerField()
    orders_executed = serializers.IntegerField()
    found = PhaseErrorsSerializer()
    caused = PhaseErrorsSerializer()


QualityPhasesFigureSerializer = figure_serializer(
    "QualityPhasesFigure", QualityPhaseSerializer(many=True), total_errors=serializers.IntegerField(),
    errors_with_culprit_phase=serializers.IntegerField(), culprit_coverage=serializers.FloatField(allow_null=True))


class QualityByPhaseResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    phases = QualityPhasesFigureSerializer()


FirstPassYieldFigureSerializer = figure_serializer(
    "FirstPassYieldFigure", serializers.FloatField(allow_null=True),
    finished_without_error=serializers.IntegerField(), orders_finished=serializers.IntegerField())


class QualityRatesSerializer(serializers.Serializer):
    orders = serializers.IntegerField()
    orders_finished = serializers.IntegerField()
    orders_with_errors = serializers.IntegerField()
    errors = serializers.FloatField(help_text="Errors on the orders (a count).")
    errors_per_order = serializers.FloatField(allow_null=True)
    share_of_orders_with_errors = serializers.FloatField(allow_null=True)
    by_severity = SeverityCountSerializer(many=True)
    first_pass_yield = FirstPassYieldFigureSerializer()


class QualityProductSerializer(QualityRatesSerializer):
    product_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    family = serializers.CharField(help_text="Product family, or UNKNOWN for an orphan product id.")
    known_product = serializers.BooleanField()


class QualityFamilySerializer(QualityRatesSerializer):
    family = serializers.CharField(help_text="Product family, or UNKNOWN.")


QualityProductsFigureSerializer = figure_serializer("QualityProductsFigure", QualityProductSerializer(many=True),
                                                    note=serializers.CharField())
QualityFamiliesFigureSerializer = figure_serializer("QualityFamiliesFigure", QualityFamilySerializer(many=True))
QualityFactoryFigureSerializer = figure_serializer("QualityFactoryFigure", QualityRatesSerializer())


class QualityByProductResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    products = QualityProductsFigureSerializer()
    families = QualityFamiliesFigureSerializer()
    factory = QualityFactoryFigureSerializer()
    errors_on_unknown_orders = serializers.IntegerField()


class HeatmapCellSerializer(serializers.Serializer):
    found_phase_id = serializers.IntegerField(allow_null=True)
    culprit_phase_id = serializers.IntegerField(allow_null=True)
    count = serializers.IntegerField()


class HeatmapPhaseSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)
    sequence = serializers.IntegerField(allow_null=True)


HeatmapFigureSerializer = figure_serializer(
    "HeatmapFigure", HeatmapCellSerializer(many=True), errors=serializers.IntegerField(),
    errors_in_matrix=serializers.IntegerField(), culprit_filled=serializers.IntegerField())


class QualityHeatmapResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    matrix = HeatmapFigureSerializer()
    phases = HeatmapPhaseSerializer(many=True)


class EscapeCoverageSerializer(serializers.Serializer):
    errors = serializers.IntegerField()
    with_culprit = serializers.IntegerField()
    measured = serializers.IntegerField()
    inconsistent_found_before_culprit = serializers.IntegerField()
    share_measured = serializers.FloatField(allow_null=True)


class PhasesBetweenSerializer(serializers.Serializer):
    sum = serializers.IntegerField(allow_null=True)
    avg = serializers.FloatField(allow_null=True)
    median = serializers.FloatField(allow_null=True)


class HoursBetweenSerializer(serializers.Serializer):
    avg = serializers.FloatField(allow_null=True)
    median = serializers.FloatField(allow_null=True)


class EscapeMassSerializer(serializers.Serializer):
    defective_kg = serializers.FloatField(allow_null=True)
    kg_phases = serializers.FloatField(allow_null=True)


HoursBetweenFigureSerializer = figure_serializer("HoursBetweenFigure", HoursBetweenSerializer(),
                                                 n=serializers.IntegerField())
EscapeMassFigureSerializer = figure_serializer("EscapeMassFigure", EscapeMassSerializer(), n=serializers.IntegerField())


class EscapeRowSerializer(serializers.Serializer):
    culprit_phase_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    errors = serializers.IntegerField()
    escaped_errors = serializers.IntegerField()
    phases_between = PhasesBetweenSerializer()
    hours_between = HoursBetweenFigureSerializer()
    mass = EscapeMassFigureSerializer()


class EscapeSeverityRowSerializer(EscapeRowSerializer):
    severity = serializers.ChoiceField(choices=Severity.choices)


EscapesFigureSerializer = figure_serializer("EscapesFigure", EscapeRowSerializer(many=True))
EscapesBySeverityFigureSerializer = figure_serializer("EscapesBySeverityFigure", EscapeSeverityRowSerializer(many=True))


class QualityEscapesResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    coverage = EscapeCoverageSerializer()
    by_culprit_phase = EscapesFigureSerializer()
    by_culprit_phase_and_severity = EscapesBySeverityFigureSerializer()


class RiskPhaseRefSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)
    known_phase = serializers.BooleanField()


class RiskLevelSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=["product", "family", "factory"])
    key = IdOrLabelField(help_text="Product id, family code, or null for the factory.")
    n = serializers.IntegerField(help_text="Sample: orders that ended the phase.")
    k = serializers.IntegerField(help_text="Events among them.")
    known = serializers.BooleanField()


RiskProbabilityFigureSerializer = figure_serializer(
    "RiskProbabilityFigure", serializers.FloatField(allow_null=True), sample_size=serializers.IntegerField(),
    events=serializers.IntegerField(),
    wilson_95=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True,
                                    help_text="Wilson 95% interval [low, high]; null for an empty sample."))


class QualityRiskResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    phase = RiskPhaseRefSerializer()
    severity_at_least = serializers.ChoiceField(choices=Severity.choices)
    attribution = serializers.ChoiceField(choices=["found", "culprit"])
    level = serializers.ChoiceField(choices=["product", "family", "factory"], help_text="The level that answered.")
    level_key = IdOrLabelField()
    fallback_reasons = serializers.ListField(child=serializers.CharField())
    levels_tried = RiskLevelSerializer(many=True)
    probability = RiskProbabilityFigureSerializer()
    rule = serializers.CharField()


class RiskTableRowSerializer(serializers.Serializer):
    family = serializers.ChoiceField(choices=ProductFamily.choices, allow_null=True,
                                     help_text="Null: orders of a product not in the catalogue.")
    phase = RiskPhaseRefSerializer()
    enough_sample = serializers.BooleanField(help_text="The sample reaches min_sample.")
    probability = RiskProbabilityFigureSerializer()


class QualityRiskTableResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    severity_at_least = serializers.ChoiceField(choices=Severity.choices)
    attribution = serializers.ChoiceField(choices=["found", "culprit"])
    product = serializers.IntegerField(allow_null=True, help_text="The product that narrowed the table, if any.")
    family = serializers.ChoiceField(choices=ProductFamily.choices, allow_null=True,
                                     help_text="The family that narrowed the table, if any.")
    min_sample = serializers.IntegerField()
    rows = RiskTableRowSerializer(many=True)
    rule = serializers.CharField()
