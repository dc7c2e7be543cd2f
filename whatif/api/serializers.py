"""Serializers of the what-if API: scenario inputs (validated against the catalogue) and stored runs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.choices import ProductFamily
from prodplan.api_serializers import basis_field
from whatif import validation as rules
from whatif.choices import PriorityRule
from whatif.models import WhatIfBacktest, WhatIfRun


class CapacityOverrideSerializer(serializers.Serializer):
    """Documents one capacity override; the rules are whatif.validation's (ScenarioSerializer applies them)."""

    phase_id = serializers.IntegerField(min_value=rules.ID[0], max_value=rules.ID[1])
    servers = serializers.IntegerField(required=False, allow_null=True, min_value=rules.SERVERS[0],
                                       max_value=rules.SERVERS[1], help_text="Absolute servers; not with multiplier.")
    multiplier = serializers.FloatField(required=False, allow_null=True, min_value=rules.MULTIPLIER[0],
                                        max_value=rules.MULTIPLIER[1],
                                        help_text="Multiplier of the derived servers; not with servers.")


class CoefOverrideSerializer(serializers.Serializer):
    """Documents one duration override (at least one of phase_id, family, product_id)."""

    phase_id = serializers.IntegerField(required=False, allow_null=True, min_value=rules.ID[0], max_value=rules.ID[1])
    family = serializers.ChoiceField(choices=ProductFamily.choices, required=False, allow_null=True)
    product_id = serializers.IntegerField(required=False, allow_null=True, min_value=rules.ID[0], max_value=rules.ID[1])
    multiplier = serializers.FloatField(min_value=rules.MULTIPLIER[0], max_value=rules.MULTIPLIER[1],
                                        help_text="Duration multiplier for the matching steps.")


class ScenarioSerializer(serializers.Serializer):
    """A scenario body. The fields document it (OpenAPI); validation is whatif.validation.clean_scenario, the same
    rules as the page's form: a 400 {field path: [message naming the field]} for anything it refuses."""

    as_of = serializers.DateTimeField(required=False, allow_null=True, help_text="Default: the data's as-of.")
    priority_rule = serializers.ChoiceField(choices=PriorityRule.choices, default=PriorityRule.FIFO)
    capacity_overrides = CapacityOverrideSerializer(many=True, required=False, default=list,
                                                    max_length=rules.MAX_OVERRIDES)
    coef_overrides = CoefOverrideSerializer(many=True, required=False, default=list, max_length=rules.MAX_OVERRIDES)
    horizon_days = serializers.IntegerField(min_value=rules.HORIZON_DAYS[0], max_value=rules.HORIZON_DAYS[1],
                                            default=rules.DEFAULTS["horizon_days"])
    arrivals = serializers.BooleanField(default=rules.DEFAULTS["arrivals"])
    arrival_weeks = serializers.IntegerField(min_value=rules.ARRIVAL_WEEKS[0], max_value=rules.ARRIVAL_WEEKS[1],
                                             default=rules.DEFAULTS["arrival_weeks"])
    seed = serializers.IntegerField(min_value=rules.SEED[0], max_value=rules.SEED[1], default=rules.DEFAULTS["seed"])
    run_async = serializers.BooleanField(default=False, help_text="Run as a Celery task (202 + id).")

    def to_internal_value(self, data):
        try:
            return rules.clean_scenario(data)
        except rules.ScenarioInvalid as exc:
            raise serializers.ValidationError(exc.as_api_errors()) from exc


class CanonicalInputsSerializer(serializers.Serializer):
    """The scenario in its canonical form (defaults filled, as-of resolved, overrides sorted): what input_hash hashes."""

    as_of = serializers.DateTimeField()
    priority_rule = serializers.ChoiceField(choices=PriorityRule.choices)
    capacity_overrides = CapacityOverrideSerializer(many=True)
    coef_overrides = CoefOverrideSerializer(many=True)
    horizon_days = serializers.IntegerField()
    arrivals = serializers.BooleanField()
    arrival_weeks = serializers.IntegerField()
    seed = serializers.IntegerField()


class RunTimingsSerializer(serializers.Serializer):
    """Milliseconds (empty until the run finished)."""

    gather_ms = serializers.FloatField(required=False)
    simulate_ms = serializers.FloatField(required=False)
    total_ms = serializers.FloatField(required=False)


@extend_schema_field(CanonicalInputsSerializer)
class CanonicalInputsField(serializers.JSONField):
    """The stored canonical inputs, as stored (the schema is CanonicalInputsSerializer's)."""


@extend_schema_field(RunTimingsSerializer)
class RunTimingsField(serializers.JSONField):
    """The stored timings, as stored."""


@extend_schema_field({"type": "array", "items": {"type": "number"}})
class WeeklySeriesField(serializers.JSONField):
    """Finishes per week, as stored."""


class OrdersInSerializer(serializers.Serializer):
    wip = serializers.IntegerField()
    arrivals = serializers.IntegerField()


class SimulatedKpisSerializer(serializers.Serializer):
    """One simulated run's figures over the horizon (days; per-phase maps keyed by phase id)."""

    orders_in = OrdersInSerializer()
    orders_stalled = serializers.IntegerField()
    orders_overdue_at_start = serializers.IntegerField()
    orders_finished = serializers.IntegerField()
    orders_unfinished = serializers.IntegerField()
    orders_finished_wip = serializers.IntegerField()
    orders_finished_arrivals = serializers.IntegerField()
    throughput_per_week = serializers.ListField(child=serializers.IntegerField())
    mean_throughput_per_week = serializers.FloatField(allow_null=True)
    mean_remaining_lead_time_days = serializers.FloatField(allow_null=True)
    p90_remaining_lead_time_days = serializers.FloatField(allow_null=True)
    mean_lead_time_arrivals_days = serializers.FloatField(allow_null=True)
    median_lead_time_finished_days = serializers.FloatField(allow_null=True)
    mean_lead_time_finished_days = serializers.FloatField(allow_null=True)
    mean_flow_time_days = serializers.FloatField(allow_null=True)
    wip_at_horizon_end = serializers.IntegerField()
    mean_queue_wait_days = serializers.DictField(child=serializers.FloatField(allow_null=True))
    mean_queue_wait_days_overall = serializers.FloatField(allow_null=True)
    utilisation = serializers.DictField(child=serializers.FloatField(allow_null=True))
    bottleneck_phase_id = serializers.IntegerField(allow_null=True)
    servers = serializers.DictField(child=serializers.IntegerField())


class KpiDeltasSerializer(serializers.Serializer):
    """Scenario minus baseline for every figure (null where one side has none)."""

    orders_stalled = serializers.FloatField(allow_null=True)
    orders_overdue_at_start = serializers.FloatField(allow_null=True)
    orders_finished = serializers.FloatField(allow_null=True)
    orders_unfinished = serializers.FloatField(allow_null=True)
    orders_finished_wip = serializers.FloatField(allow_null=True)
    orders_finished_arrivals = serializers.FloatField(allow_null=True)
    throughput_per_week = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True)
    mean_throughput_per_week = serializers.FloatField(allow_null=True)
    mean_remaining_lead_time_days = serializers.FloatField(allow_null=True)
    p90_remaining_lead_time_days = serializers.FloatField(allow_null=True)
    mean_lead_time_arrivals_days = serializers.FloatField(allow_null=True)
    median_lead_time_finished_days = serializers.FloatField(allow_null=True)
    mean_lead_time_finished_days = serializers.FloatField(allow_null=True)
    mean_flow_time_days = serializers.FloatField(allow_null=True)
    wip_at_horizon_end = serializers.FloatField(allow_null=True)
    mean_queue_wait_days = serializers.DictField(child=serializers.FloatField(allow_null=True))
    mean_queue_wait_days_overall = serializers.FloatField(allow_null=True)
    utilisation = serializers.DictField(child=serializers.FloatField(allow_null=True))
    servers = serializers.DictField(child=serializers.FloatField(allow_null=True))


class BottleneckPhaseRefSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)


class BottleneckShiftSerializer(serializers.Serializer):
    baseline = BottleneckPhaseRefSerializer()
    scenario = BottleneckPhaseRefSerializer()


class AffectedOrderSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The simulated order (an order id, or an arrival's key).")
    order_id = serializers.IntegerField(allow_null=True)
    product_id = serializers.IntegerField(allow_null=True)
    baseline_finish_day = serializers.FloatField(allow_null=True)
    scenario_finish_day = serializers.FloatField(allow_null=True)
    change_days = serializers.FloatField()


class SimulationModelField(serializers.JSONField):
    """What the simulation stood on at as_of (the engine's inputs: rules, capacity per phase, calendar, delays,
    sample sizes); a free document that changes with the engine."""


class WhatIfOutputsSerializer(serializers.Serializer):
    """A succeeded run's outputs: baseline and scenario figures, their deltas, the bottleneck, the orders that move."""

    basis = basis_field()
    coverage = serializers.FloatField(allow_null=True, help_text="Share of the WIP placed at a phase.")
    baseline = SimulatedKpisSerializer()
    scenario = SimulatedKpisSerializer()
    deltas = KpiDeltasSerializer()
    bottleneck = BottleneckShiftSerializer()
    top_affected_orders = AffectedOrderSerializer(many=True)
    orders_affected = serializers.IntegerField()
    steps = serializers.IntegerField()
    model = SimulationModelField()
    notes = serializers.ListField(child=serializers.CharField())
    events_per_second = serializers.IntegerField(allow_null=True)


@extend_schema_field(WhatIfOutputsSerializer)
class RunOutputsField(serializers.JSONField):
    """The simulation's outputs (whatif.engine.simulate plus basis, coverage, model, notes): baseline and scenario
    KPIs, their deltas, the bottleneck, per-order finish changes. Null until the run succeeded."""


class BacktestSummarySerializer(serializers.ModelSerializer):
    simulated_weekly = WeeklySeriesField(help_text="Simulated finishes per week.")
    actual_weekly = WeeklySeriesField(help_text="Real finishes per week.")

    class Meta:
        model = WhatIfBacktest
        fields = ["id", "start", "weeks", "data_version", "mape", "total_error", "simulated_weekly", "actual_weekly",
                  "created_at"]


class RunListSerializer(serializers.ModelSerializer):
    inputs = CanonicalInputsField()
    timings = RunTimingsField()

    class Meta:
        model = WhatIfRun
        fields = ["id", "status", "input_hash", "data_version", "inputs", "timings", "created_at", "finished_at"]


class RunSerializer(serializers.ModelSerializer):
    inputs = CanonicalInputsField()
    outputs = RunOutputsField(allow_null=True)
    timings = RunTimingsField()
    backtest = serializers.SerializerMethodField(help_text="The latest backtest, shown next to every scenario.")

    class Meta:
        model = WhatIfRun
        fields = ["id", "status", "input_hash", "data_version", "inputs", "outputs", "error", "timings",
                  "created_at", "started_at", "finished_at", "backtest"]

    @extend_schema_field(BacktestSummarySerializer(allow_null=True))
    def get_backtest(self, obj) -> dict | None:
        bt = self.context.get("backtest")
        return BacktestSummarySerializer(bt).data if bt is not None else None
