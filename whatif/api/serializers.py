"""Serializers of the what-if API: scenario inputs (validated against the catalogue) and stored runs."""

from __future__ import annotations

from rest_framework import serializers

from orders.choices import ProductFamily
from orders.models import Phase, Product
from whatif.choices import PriorityRule
from whatif.models import WhatIfBacktest, WhatIfRun


class CapacityOverrideSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField()
    servers = serializers.IntegerField(required=False, allow_null=True, help_text="Absolute servers (>= 1).")
    multiplier = serializers.FloatField(required=False, allow_null=True, help_text="Multiplier of the derived servers.")

    def validate(self, attrs):
        servers, mult = attrs.get("servers"), attrs.get("multiplier")
        if (servers is None) == (mult is None):
            raise serializers.ValidationError("Give exactly one of servers or multiplier.")
        if servers is not None and servers < 1:
            raise serializers.ValidationError({"servers": f"Capacity must be at least 1 server (got {servers})."})
        if mult is not None and mult <= 0:
            raise serializers.ValidationError({"multiplier": f"Capacity multiplier must be positive (got {mult})."})
        return attrs


class CoefOverrideSerializer(serializers.Serializer):
    phase_id = serializers.IntegerField(required=False, allow_null=True)
    family = serializers.ChoiceField(choices=ProductFamily.choices, required=False, allow_null=True)
    product_id = serializers.IntegerField(required=False, allow_null=True)
    multiplier = serializers.FloatField(help_text="Duration multiplier (> 0) for the matching steps.")

    def validate(self, attrs):
        if attrs["multiplier"] <= 0:
            raise serializers.ValidationError({"multiplier": f"Duration multiplier must be positive (got {attrs['multiplier']})."})
        if all(attrs.get(k) is None for k in ("phase_id", "family", "product_id")):
            raise serializers.ValidationError("Give at least one of phase_id, family, product_id.")
        return attrs


class ScenarioSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(required=False, allow_null=True, help_text="Default: the data's as-of.")
    priority_rule = serializers.ChoiceField(choices=PriorityRule.choices, default=PriorityRule.FIFO)
    capacity_overrides = CapacityOverrideSerializer(many=True, required=False, default=list)
    coef_overrides = CoefOverrideSerializer(many=True, required=False, default=list)
    horizon_days = serializers.IntegerField(min_value=1, max_value=730, default=56)
    arrivals = serializers.BooleanField(default=True)
    arrival_weeks = serializers.IntegerField(min_value=1, max_value=104, default=8)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    run_async = serializers.BooleanField(default=False, help_text="Run as a Celery task (202 + id).")

    def validate(self, attrs):
        phase_ids = {c["phase_id"] for c in attrs["capacity_overrides"]}
        phase_ids |= {c["phase_id"] for c in attrs["coef_overrides"] if c.get("phase_id") is not None}
        unknown = sorted(phase_ids - set(Phase.objects.filter(id__in=phase_ids).values_list("id", flat=True)))
        if unknown:
            raise serializers.ValidationError({"phase_id": f"Unknown phase(s): {', '.join(map(str, unknown))}."})
        product_ids = {c["product_id"] for c in attrs["coef_overrides"] if c.get("product_id") is not None}
        unknown = sorted(product_ids - set(Product.objects.filter(id__in=product_ids).values_list("id", flat=True)))
        if unknown:
            raise serializers.ValidationError({"product_id": f"Unknown product(s): {', '.join(map(str, unknown))}."})
        seen = set()
        for c in attrs["capacity_overrides"]:
            if c["phase_id"] in seen:
                raise serializers.ValidationError({"phase_id": f"Phase {c['phase_id']} has two capacity overrides."})
            seen.add(c["phase_id"])
        return attrs


class BacktestSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = WhatIfBacktest
        fields = ["id", "start", "weeks", "data_version", "mape", "total_error", "simulated_weekly", "actual_weekly",
                  "created_at"]


class RunListSerializer(serializers.ModelSerializer):
    class Meta:
        model = WhatIfRun
        fields = ["id", "status", "input_hash", "data_version", "inputs", "timings", "created_at", "finished_at"]


class RunSerializer(serializers.ModelSerializer):
    backtest = serializers.SerializerMethodField(help_text="The latest backtest, shown next to every scenario.")

    class Meta:
        model = WhatIfRun
        fields = ["id", "status", "input_hash", "data_version", "inputs", "outputs", "error", "timings",
                  "created_at", "started_at", "finished_at", "backtest"]

    def get_backtest(self, obj) -> dict | None:
        bt = self.context.get("backtest")
        return BacktestSummarySerializer(bt).data if bt is not None else None
