"""Serializers of the orders API: response shapes for the schema, and query-parameter validation."""

from __future__ import annotations

from rest_framework import serializers

from orders.choices import OrderState, OrderStatus, PlacementBasis, ProductFamily
from prodplan.asof import AS_OF_MAX, AS_OF_MIN, AS_OF_RANGE

STATUS_HELP = (
    "Status at the as-of time: DONE (finished), ABANDONED (marked by a data steward), STALLED (see state), LATE "
    "(active and older than the product's ORDER_LATE_PERCENTILE lead time, default p90), AT_RISK (older than the "
    "ORDER_AT_RISK_PERCENTILE one, default p75), CREATED (no phase started), IN_PROGRESS. Percentiles are of the "
    "orders finished by as_of: the product's own when it has at least MIN_HISTORY_FOR_PRODUCT_PERCENTILE, else "
    "its family's, else global. Basis: theoretical (the data has no due dates)."
)
STATE_HELP = "Where the order is at the as-of time (orders.selectors.ORDER_STATE_RULE)."


class ProductRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="'unknown product' when the id is not in the catalogue (orphan).")
    family = serializers.ChoiceField(choices=ProductFamily.choices)
    is_known = serializers.BooleanField()


class PhaseRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)


class StatusBasisSerializer(serializers.Serializer):
    basis = serializers.CharField(help_text="Always 'theoretical': thresholds come from historical lead times.")
    threshold_scope = serializers.ChoiceField(choices=["product", "family", "global"])
    at_risk_days = serializers.FloatField(allow_null=True)
    late_days = serializers.FloatField(allow_null=True)
    history = serializers.CharField(help_text="Which orders the percentiles come from.")


class PositionSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=OrderState.choices, help_text=STATE_HELP)
    phase = PhaseRefSerializer(allow_null=True, help_text="The phase the order is at (in progress) or waits for.")
    placement_basis = serializers.ChoiceField(choices=PlacementBasis.choices, help_text="What the phase stands on.")
    since = serializers.DateTimeField(allow_null=True, help_text="When the order entered its state.")
    in_state_days = serializers.FloatField(allow_null=True)
    last_event_at = serializers.DateTimeField(allow_null=True, help_text="Creation, or the last phase start or end.")
    stall_threshold_days = serializers.FloatField(allow_null=True, help_text="Idle longer than this: stalled.")
    stalled_while = serializers.CharField(allow_null=True, help_text="Stalled or abandoned: the state it stopped in.")


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Of_Id")
    product = ProductRefSerializer(allow_null=True)
    created = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True, help_text="Null while open at the as-of time.")
    status = serializers.ChoiceField(choices=OrderStatus.choices, help_text=STATUS_HELP)
    state = serializers.ChoiceField(choices=OrderState.choices, help_text=STATE_HELP)
    current_phase = PhaseRefSerializer(allow_null=True, help_text="The order state's phase at the as-of time.")
    position = PositionSerializer(help_text="The order state at the as-of time.")
    age_days = serializers.FloatField(allow_null=True, help_text="Open orders: as-of minus creation, in days.")
    lead_time_days = serializers.FloatField(allow_null=True, help_text="Done orders: finish minus creation, in days.")
    status_basis = StatusBasisSerializer()


class FigureSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    basis = serializers.ChoiceField(choices=["observed", "theoretical", "imputed"])
    coverage = serializers.FloatField(allow_null=True, help_text="Share of rows that support the figure.")


class OrderCountsSerializer(serializers.Serializer):
    phases = serializers.IntegerField()
    phases_started = serializers.IntegerField()
    phases_done = serializers.IntegerField()
    reworks = serializers.IntegerField()
    errors = serializers.IntegerField()


class OrderDetailSerializer(OrderSerializer):
    counts = OrderCountsSerializer()
    first_phase_started = serializers.DateTimeField(allow_null=True)
    last_phase_ended = serializers.DateTimeField(allow_null=True)
    age_vs_late_threshold = FigureSerializer(help_text="Age (open) or lead time (done) over the late threshold.")


class TimelinePhaseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="FaseOf_Id")
    phase = PhaseRefSerializer(allow_null=True)
    sequence = serializers.IntegerField(allow_null=True)
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    duration_hours = serializers.FloatField(allow_null=True, help_text="Elapsed end - start, not labour hours.")
    shift = serializers.IntegerField(allow_null=True)
    is_rework = serializers.BooleanField()
    state = serializers.ChoiceField(choices=["done", "in_progress", "not_started"])
    planned = serializers.DateTimeField(allow_null=True, help_text="FaseOf_DataPrevista (filled on ~5% of phases).")
    team_size = serializers.IntegerField(allow_null=True, help_text="Null when no assignment matches this phase.")
    team_leaders = serializers.IntegerField(allow_null=True)


class RouteStepRefSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)
    sequence = serializers.IntegerField(required=False)


class RouteComparisonSerializer(serializers.Serializer):
    has_standard_route = serializers.BooleanField()
    standard_steps = RouteStepRefSerializer(many=True)
    missing_steps = RouteStepRefSerializer(many=True, help_text="Standard steps not executed though the order finished or went past them (an open order's later steps are pending, not missing).")
    extra_steps = RouteStepRefSerializer(many=True)


class OrderTimelineSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    product_id = serializers.IntegerField(allow_null=True)
    phases = TimelinePhaseSerializer(many=True)
    planned_date_coverage = serializers.FloatField(allow_null=True)
    team_size_coverage = serializers.FloatField(allow_null=True, help_text="Share of phases with matching assignments.")
    route_comparison = RouteComparisonSerializer()


class KpiRangeQuerySerializer(serializers.Serializer):
    date_from = serializers.DateField(required=False, help_text="First day (inclusive); default 83 days before date_to.")
    date_to = serializers.DateField(required=False, help_text="Last day (inclusive); default the as-of date.")

    @staticmethod
    def _in_range(value):
        """The as_of range (prodplan.asof): far from year 1 and 9999, where adding a day or a time zone overflows."""
        if value is not None and not AS_OF_MIN <= value <= AS_OF_MAX:
            raise serializers.ValidationError(f"'{value.isoformat()}' is outside the accepted range {AS_OF_RANGE}.")
        return value

    def validate_date_from(self, value):
        return self._in_range(value)

    def validate_date_to(self, value):
        return self._in_range(value)

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError("date_from must not be after date_to.")
        return attrs


class RiskQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
