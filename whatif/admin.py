"""Admin of what-if runs and backtests: browsable with inputs, outputs and timings (read-only)."""

import json

from django.contrib import admin
from django.utils.html import format_html

from whatif.models import WhatIfBacktest, WhatIfRun


def _pretty(value) -> str:
    return format_html("<pre style='max-height:40em;overflow:auto'>{}</pre>", json.dumps(value, indent=2, default=str))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WhatIfRun)
class WhatIfRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "priority_rule", "horizon", "data_version", "total_ms", "created_at"]
    list_filter = ["status", "data_version"]
    search_fields = ["input_hash"]
    date_hierarchy = "created_at"
    exclude = ["inputs", "outputs", "timings"]
    readonly_fields = ["status", "input_hash", "data_version", "error", "created_at", "started_at", "finished_at",
                       "inputs_pretty", "timings_pretty", "outputs_pretty"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("outputs")

    @admin.display(description="priority rule")
    def priority_rule(self, obj):
        return obj.inputs.get("priority_rule")

    @admin.display(description="horizon (days)")
    def horizon(self, obj):
        return obj.inputs.get("horizon_days")

    @admin.display(description="total ms")
    def total_ms(self, obj):
        return (obj.timings or {}).get("total_ms")

    @admin.display(description="inputs")
    def inputs_pretty(self, obj):
        return _pretty(obj.inputs)

    @admin.display(description="timings")
    def timings_pretty(self, obj):
        return _pretty(obj.timings)

    @admin.display(description="outputs")
    def outputs_pretty(self, obj):
        return _pretty(obj.outputs)


@admin.register(WhatIfBacktest)
class WhatIfBacktestAdmin(ReadOnlyAdmin):
    list_display = ["id", "start", "weeks", "mape", "total_error", "data_version", "created_at"]
    readonly_fields = ["start", "weeks", "data_version", "mape", "total_error", "simulated_weekly", "actual_weekly",
                       "details_pretty", "created_at"]
    exclude = ["details"]

    @admin.display(description="details")
    def details_pretty(self, obj):
        return _pretty(obj.details)
