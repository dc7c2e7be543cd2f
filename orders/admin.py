"""Admin for the catalogue and orders: read-only (the workbook is the source), no per-row queries."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from orders import services
from orders.models import (
    Employee,
    EmployeeSkill,
    ManufacturingOrder,
    OrderAbandonment,
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
    actions = ["mark_abandoned"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("orders.add_orderabandonment"):
            actions.pop("mark_abandoned", None)
        return actions

    @admin.action(description=_("Mark as abandoned (kept in the data, hidden from planning)"))
    def mark_abandoned(self, request, queryset):
        marked, refused = 0, []
        for order_id in queryset.values_list("id", flat=True):
            try:
                services.order_abandon(order_id=order_id, marked_by=request.user.get_username(),
                                       reason=str(_("marked from the order list")))
                marked += 1
            except services.OrderNotAbandonable as exc:
                refused.append(str(exc))
        if marked:
            self.message_user(request, ngettext("%(n)d order marked as abandoned.", "%(n)d orders marked as abandoned.", marked) % {"n": marked}, messages.SUCCESS)
        for reason in refused[:10]:
            self.message_user(request, reason, messages.WARNING)


@admin.register(OrderAbandonment)
class OrderAbandonmentAdmin(admin.ModelAdmin):
    """A steward marks an order abandoned (or takes the mark off); the order stays in the data."""

    list_display = ["order_id", "marked_by", "marked_at", "reason"]
    search_fields = ["=order_id", "reason"]
    fields = ["order_id", "reason", "marked_by", "marked_at"]
    readonly_fields = ["marked_by", "marked_at"]
    actions = ["unmark"]

    def get_readonly_fields(self, request, obj=None):
        return ["order_id", *self.readonly_fields] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        try:
            saved = services.order_abandon(order_id=obj.order_id, marked_by=request.user.get_username(), reason=obj.reason)
        except services.OrderNotAbandonable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.marked_by, obj.marked_at = saved.marked_by, saved.marked_at

    def delete_model(self, request, obj):
        services.order_unabandon(order_ids=[obj.order_id])

    def delete_queryset(self, request, queryset):
        services.order_unabandon(order_ids=list(queryset.values_list("order_id", flat=True)))

    @admin.action(description=_("Return to planning (remove the abandonment mark)"), permissions=["delete"])
    def unmark(self, request, queryset):
        n = services.order_unabandon(order_ids=list(queryset.values_list("order_id", flat=True)))
        self.message_user(request, ngettext("%(n)d order returned to planning.", "%(n)d orders returned to planning.", n) % {"n": n}, messages.SUCCESS)


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
