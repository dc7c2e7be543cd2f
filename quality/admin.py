"""Admin for quality errors: read-only, filterable by severity and phase."""

from django.contrib import admin

from prodplan.admin_mixins import IngestedReadOnlyAdmin
from quality.models import QualityErrorRecord


@admin.register(QualityErrorRecord)
class QualityErrorAdmin(IngestedReadOnlyAdmin):
    list_display = ["order_id", "severity", "description", "found_phase_id", "found_order_phase_id", "culprit_order_phase_id", "occurrence", "event_time"]
    list_filter = ["severity", ("culprit_order_phase_id", admin.EmptyFieldListFilter)]
    search_fields = ["=order_id", "description"]
    date_hierarchy = "event_time"
