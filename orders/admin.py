"""Admin for the catalogue and orders: read-only (the workbook is the source), no per-row queries."""

from django.contrib import admin

from orders.models import (
    Employee,
    EmployeeSkill,
    ManufacturingOrder,
    OrderPhaseRecord,
    Phase,
    PhaseAssignmentRecord,
    Product,
    RouteStep,
)
from prodplan.admin_mixins import IngestedReadOnlyAdmin


@admin.register(Product)
class ProductAdmin(IngestedReadOnlyAdmin):
    list_display = ["id", "name", "family", "demould_weight_kg", "finished_weight_kg", "gelcoat_deck_qty", "gelcoat_hull_qty"]
    list_filter = ["family"]
    search_fields = ["=id", "name"]


@admin.register(Phase)
class PhaseAdmin(IngestedReadOnlyAdmin):
    list_display = ["id", "name", "sequence", "is_production", "is_automatic"]
    list_filter = ["is_production", "is_automatic"]
    search_fields = ["=id", "name"]


@admin.register(RouteStep)
class RouteStepAdmin(IngestedReadOnlyAdmin):
    list_display = ["product_id", "sequence", "phase_id", "labour_coefficient", "machine_coefficient"]
    search_fields = ["=product_id", "=phase_id"]


@admin.register(Employee)
class EmployeeAdmin(IngestedReadOnlyAdmin):
    list_filter = ["is_active"]
    search_fields = ["=id"]

    def get_list_display(self, request):
        if request.user.has_perm("orders.view_employee_name"):
            return ["id", "name", "is_active"]
        return ["id", "is_active"]

    def get_fields(self, request, obj=None):
        return self.get_list_display(request)

    def get_search_fields(self, request):
        if request.user.has_perm("orders.view_employee_name"):
            return ["=id", "name"]
        return ["=id"]


@admin.register(EmployeeSkill)
class EmployeeSkillAdmin(IngestedReadOnlyAdmin):
    list_display = ["employee_id", "phase_id", "qualified_since"]
    search_fields = ["=employee_id", "=phase_id"]
    date_hierarchy = "qualified_since"


@admin.register(ManufacturingOrder)
class ManufacturingOrderAdmin(IngestedReadOnlyAdmin):
    list_display = ["id", "product_id", "created_at", "finished_at", "current_phase_id", "is_open", "lead_time_days"]
    list_filter = ["is_open"]
    search_fields = ["=id", "=product_id"]
    date_hierarchy = "created_at"


@admin.register(OrderPhaseRecord)
class OrderPhaseAdmin(IngestedReadOnlyAdmin):
    list_display = ["id", "order_id", "sequence", "phase_id", "started_at", "ended_at", "duration_seconds", "is_rework", "shift"]
    list_filter = ["is_rework", "is_open", "is_done", "shift"]
    search_fields = ["=id", "=order_id"]
    date_hierarchy = "event_time"


@admin.register(PhaseAssignmentRecord)
class PhaseAssignmentAdmin(IngestedReadOnlyAdmin):
    list_display = ["order_phase_id", "employee_id", "is_leader"]
    list_filter = ["is_leader"]
    search_fields = ["=order_phase_id", "=employee_id"]
