"""Serializers of the orders API: response shapes for the schema, and query-parameter validation."""

from __future__ import annotations

from rest_framework import serializers

from orders.choices import OrderState, OrderStatus, PlacementBasis, ProductFamily
from prodplan.api_serializers import (
    IdOrLabelField,
    NotedNumberFigureSerializer,
    NumberFigureSerializer,
    basis_field,
    figure_serializer,
    not_supported_serializer,
)
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


# --- response shapes of the analytic endpoints (schema only: the views return the selectors' dicts) -----------

class PlacementCountsSerializer(serializers.Serializer):
    """Open orders per placement basis (what their phase stands on)."""

    phase_in_progress = serializers.IntegerField()
    next_phase_row = serializers.IntegerField()
    route_next_step = serializers.IntegerField()
    observed_next_phase = serializers.IntegerField()
    erp_current_phase = serializers.IntegerField()
    unknown = serializers.IntegerField()


PlacementFigureSerializer = figure_serializer(
    "PlacementFigure", PlacementCountsSerializer(), doc="How open orders are placed, and the share placed.",
    placed=serializers.IntegerField(help_text="Open orders with a known phase."))


class StateCountsSerializer(serializers.Serializer):
    not_started = serializers.IntegerField()
    waiting = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    stalled = serializers.IntegerField()
    abandoned = serializers.IntegerField()
    finished = serializers.IntegerField()


class StallThresholdSerializer(serializers.Serializer):
    floor_days = serializers.FloatField()
    default_days = serializers.FloatField()
    by_phase_days = serializers.DictField(child=serializers.FloatField(), help_text="Phase id -> threshold in days.")
    percentile = serializers.FloatField()
    window_days = serializers.IntegerField()
    gaps_measured = serializers.IntegerField()
    rule = serializers.CharField()
    learnt_at = serializers.DateTimeField()


class OrderStatesResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    states = StateCountsSerializer()
    open_orders = serializers.IntegerField()
    placement = PlacementFigureSerializer()
    stall_threshold = StallThresholdSerializer()


class StalledOrderSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    product_id = serializers.IntegerField(allow_null=True)
    phase = PhaseRefSerializer(allow_null=True)
    stalled_while = serializers.CharField(allow_null=True, help_text="The state it stopped in.")
    placement_basis = serializers.ChoiceField(choices=PlacementBasis.choices)
    last_event_at = serializers.DateTimeField()
    idle_days = serializers.FloatField()
    threshold_days = serializers.FloatField()
    age_days = serializers.FloatField(allow_null=True)


class StalledBlockSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    threshold = StallThresholdSerializer()
    orders = StalledOrderSerializer(many=True, help_text="Longest idle first.")


class StalledOrdersResponseSerializer(StalledBlockSerializer):
    as_of = serializers.DateTimeField()


class FigureNSerializer(FigureSerializer):
    """A figure with its sample size."""

    n = serializers.IntegerField()


class RouteStepSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    phase = PhaseRefSerializer()
    labour_coefficient = serializers.FloatField(allow_null=True)
    machine_coefficient = serializers.FloatField(allow_null=True)
    duration_hours_p50 = FigureNSerializer()
    duration_hours_p90 = FigureNSerializer()
    n = serializers.IntegerField(help_text="Ended phases of the product measured.")


class RouteDeviationSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["skipped", "extra", "rework", "out_of_order"])
    phase = PhaseRefSerializer(allow_null=True)
    orders = serializers.IntegerField()


class RouteConformanceSerializer(serializers.Serializer):
    orders = serializers.IntegerField(help_text="Finished orders of the product.")
    followed_standard = FigureNSerializer()
    skipped_steps = FigureNSerializer()
    out_of_order = FigureNSerializer()
    looped_back = FigureNSerializer()
    extra_steps = FigureNSerializer()
    most_common_deviations = RouteDeviationSerializer(many=True)


class RouteResponseSerializer(serializers.Serializer):
    product = ProductRefSerializer()
    steps = RouteStepSerializer(many=True)
    conformance = RouteConformanceSerializer()


class AgeDaysSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    buckets = serializers.DictField(child=serializers.IntegerField(), help_text="Age bucket label -> orders.")


class OldestOrderSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    age_days = serializers.FloatField(allow_null=True)
    state = serializers.ChoiceField(choices=OrderState.choices)
    in_state_days = serializers.FloatField(allow_null=True)


class SchedulePhaseSerializer(serializers.Serializer):
    phase = PhaseRefSerializer(allow_null=True)
    wip = serializers.IntegerField()
    not_started = serializers.IntegerField()
    waiting = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    stalled = serializers.IntegerField()
    age_days = AgeDaysSerializer()
    oldest_orders = OldestOrderSerializer(many=True)


class ScheduleCurrentResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    states = StateCountsSerializer()
    open_orders = serializers.IntegerField()
    active_orders = serializers.IntegerField()
    positioned_orders = serializers.IntegerField()
    coverage = serializers.FloatField(allow_null=True)
    placement = PlacementFigureSerializer()
    basis = basis_field()
    phases = SchedulePhaseSerializer(many=True)
    stalled = StalledBlockSerializer()
    abandoned = serializers.IntegerField()


class QueueTimeValueSerializer(serializers.Serializer):
    total = serializers.FloatField(allow_null=True)
    measured_in_window = serializers.FloatField(allow_null=True)
    waiting_now = serializers.FloatField(allow_null=True)
    mean_wait = serializers.FloatField(allow_null=True)


QueueTimeFigureSerializer = figure_serializer(
    "QueueTimeFigure", QueueTimeValueSerializer(), n=serializers.IntegerField(), window_days=serializers.IntegerField())
WindowFigureSerializer = figure_serializer("WindowFigure", serializers.FloatField(allow_null=True),
                                           window_days=serializers.IntegerField())
UtilisationFigureSerializer = figure_serializer(
    "UtilisationFigure", serializers.FloatField(allow_null=True),
    capacity_observed=serializers.IntegerField(allow_null=True), note=serializers.CharField())


class ExpectedVisitsSerializer(serializers.Serializer):
    waiting_now = serializers.IntegerField(help_text="Active orders waiting for the phase now.")
    on_route_next_steps = serializers.IntegerField(
        help_text="Active orders with the phase among the next steps of their route after where they are.")


class ForecastQueueValueSerializer(serializers.Serializer):
    total = serializers.FloatField(allow_null=True, help_text="The forecast the ranking uses (hours, next 4 weeks).")
    from_expected_visits = serializers.FloatField(allow_null=True, help_text="Expected visits x mean wait.")
    from_recent_queue = serializers.FloatField(allow_null=True,
                                               help_text="The recent-queue weight x the queue measured in the window.")
    expected_visits = ExpectedVisitsSerializer()
    mean_wait = serializers.FloatField(allow_null=True, help_text="Mean measured wait per visit (hours).")


ForecastQueueFigureSerializer = figure_serializer(
    "ForecastQueueFigure", ForecastQueueValueSerializer(), n=serializers.IntegerField(),
    horizon_days=serializers.IntegerField(), mean_wait_window_days=serializers.IntegerField(),
    route_steps=serializers.IntegerField(), recent_weight=serializers.FloatField())


class BottleneckPhaseSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    phase = PhaseRefSerializer()
    forecast_queue_hours = ForecastQueueFigureSerializer()
    queue_time_hours = QueueTimeFigureSerializer()
    queue_size = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    throughput_per_day = WindowFigureSerializer()
    utilisation = UtilisationFigureSerializer()
    enough_volume = serializers.BooleanField()


class BottleneckWeekSerializer(serializers.Serializer):
    week_ending = serializers.DateTimeField()
    top_phase = PhaseRefSerializer(allow_null=True)
    queue_hours = serializers.FloatField(allow_null=True)
    forecast_hours = serializers.FloatField(allow_null=True)


class BottleneckBacktestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    start = serializers.DateTimeField()
    weeks = serializers.IntegerField()
    scored_weeks = serializers.IntegerField()
    hits = serializers.IntegerField()
    hit_rate = serializers.FloatField(allow_null=True)
    horizon_days = serializers.IntegerField()
    data_as_of = serializers.DateTimeField(allow_null=True)


class BottlenecksResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    rule = serializers.CharField()
    basis = basis_field()
    coverage = serializers.FloatField(allow_null=True)
    active_orders = serializers.IntegerField()
    stalled_orders = serializers.IntegerField()
    placement = PlacementFigureSerializer()
    next_steps_basis = serializers.DictField(child=serializers.IntegerField(),
                                             help_text="Active orders by where their next steps came from.")
    phases = BottleneckPhaseSerializer(many=True)
    top_bottleneck_by_week = BottleneckWeekSerializer(many=True)
    backtest = BottleneckBacktestSerializer(allow_null=True)


class RiskWeightsSerializer(serializers.Serializer):
    age = serializers.FloatField()
    bottleneck = serializers.FloatField()
    rework = serializers.FloatField()
    defects = serializers.FloatField()


class RiskReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["older_than_p90", "older_than_p75", "at_bottleneck", "reworks",
                                            "product_defects"])
    age_days = serializers.FloatField(required=False)
    threshold_days = serializers.FloatField(required=False)
    scope = serializers.CharField(required=False)
    rank = serializers.IntegerField(required=False)
    state = serializers.CharField(required=False)
    phase = IdOrLabelField(required=False, help_text="The phase's name (its id when the name is unknown).")
    count = serializers.IntegerField(required=False)
    share = serializers.FloatField(required=False)


class RiskPhaseSerializer(PhaseRefSerializer):
    state = serializers.ChoiceField(choices=OrderState.choices)


class RiskOrderSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    product_id = serializers.IntegerField(allow_null=True)
    age_days = serializers.FloatField()
    state = serializers.ChoiceField(choices=OrderState.choices)
    phase = RiskPhaseSerializer(allow_null=True)
    placement_basis = serializers.ChoiceField(choices=PlacementBasis.choices)
    score = serializers.FloatField()
    components = RiskWeightsSerializer()
    reasons = RiskReasonSerializer(many=True)


class RiskQueueResponseSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    method = serializers.CharField()
    weights = RiskWeightsSerializer()
    basis = basis_field()
    open_orders = serializers.IntegerField()
    active_orders = serializers.IntegerField()
    orders = RiskOrderSerializer(many=True)
    stalled = StalledBlockSerializer()


class LeadTimeValueSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    mean = serializers.FloatField(allow_null=True)


class WipValueSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    age_days_p50 = serializers.FloatField(allow_null=True)
    age_days_p90 = serializers.FloatField(allow_null=True)
    age_days_mean = serializers.FloatField(allow_null=True)


class PhaseWipValueSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    in_state_days_p50 = serializers.FloatField(allow_null=True)
    in_state_days_p90 = serializers.FloatField(allow_null=True)


PercentilesFigureSerializer = figure_serializer("PercentilesFigure", LeadTimeValueSerializer(),
                                                n=serializers.IntegerField())
WipFigureSerializer = figure_serializer("WipFigure", WipValueSerializer(),
                                        stalled_orders_excluded=serializers.IntegerField(), note=serializers.CharField())
PhaseWipFigureSerializer = figure_serializer("PhaseWipFigure", PhaseWipValueSerializer())


class KpiBlockSerializer(serializers.Serializer):
    finished_orders = serializers.IntegerField()
    lead_time_days = PercentilesFigureSerializer()
    throughput_per_week = NumberFigureSerializer()
    wip = WipFigureSerializer()
    on_time_rate = NotedNumberFigureSerializer()
    rework_rate = NotedNumberFigureSerializer()


class KpiWindowSerializer(serializers.Serializer):
    wip_at = serializers.DateTimeField(help_text="WIP is counted here: the window's end, capped at as-of.")

    def get_fields(self):
        fields = super().get_fields()
        # 'from' is a Python keyword: declared here, as DRF documents for such names
        fields["from"] = serializers.DateTimeField(help_text="Window start (inclusive).")
        fields["to"] = serializers.DateTimeField(help_text="Window end (exclusive).")
        return fields


class KpiOverviewResponseSerializer(KpiWindowSerializer, KpiBlockSerializer):
    pass


class KpiProductSerializer(KpiBlockSerializer):
    product = ProductRefSerializer()


class KpiByProductResponseSerializer(KpiWindowSerializer):
    products = KpiProductSerializer(many=True)


class KpiPhaseSerializer(serializers.Serializer):
    phase = PhaseRefSerializer()
    executions = serializers.IntegerField()
    duration_hours = PercentilesFigureSerializer()
    throughput_per_week = NumberFigureSerializer()
    wip = PhaseWipFigureSerializer()
    on_time_rate = NotedNumberFigureSerializer()
    rework_rate = NotedNumberFigureSerializer()


class KpiByPhaseResponseSerializer(KpiWindowSerializer):
    phases = KpiPhaseSerializer(many=True)


MatchRateFigureSerializer = figure_serializer(
    "MatchRateFigure", serializers.FloatField(allow_null=True), threshold=serializers.FloatField(),
    definition=serializers.CharField(), values=serializers.IntegerField(), matched_values=serializers.IntegerField(),
    rows=serializers.IntegerField(), matched_rows=serializers.IntegerField())
ElapsedHoursFigureSerializer = figure_serializer("ElapsedHoursFigure", serializers.FloatField(allow_null=True),
                                                 note=serializers.CharField())


class EmployeeKpiSerializer(serializers.Serializer):
    employee_id = serializers.IntegerField()
    name = serializers.CharField(required=False, allow_null=True,
                                 help_text="Only for users with the orders.view_employee_name permission.")
    phases_worked = serializers.IntegerField()
    phases_led = serializers.IntegerField()
    elapsed_hours = ElapsedHoursFigureSerializer()


class KpiByEmployeeResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["OK"])
    match_rate = MatchRateFigureSerializer()
    employees = EmployeeKpiSerializer(many=True)


KpiByEmployeeNotSupportedSerializer = not_supported_serializer(
    "KpiByEmployeeNotSupported", assignments=serializers.IntegerField(), matched=serializers.IntegerField(),
    match_rate_definition=serializers.CharField(), values=serializers.IntegerField(),
    matched_values=serializers.IntegerField())
