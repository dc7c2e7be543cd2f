"""Admin for the ingestion audit and the steward's reject triage."""

from django.contrib import admin

from ingestion.models import DataQualityIssue, IngestionRun, Reject, SheetRun


class SheetRunInline(admin.TabularInline):
    model = SheetRun
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in SheetRun._meta.fields if f.name != "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(IngestionRun)
class IngestionRunAdmin(admin.ModelAdmin):
    list_display = ["id", "file_name", "status", "trigger", "created_at", "duration_seconds", "as_of"]
    list_filter = ["status", "trigger"]
    search_fields = ["file_name", "file_sha256"]
    date_hierarchy = "created_at"
    inlines = [SheetRunInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in IngestionRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(SheetRun)
class SheetRunAdmin(admin.ModelAdmin):
    list_display = ["run", "sheet", "rows_read", "rows_loaded", "rows_rejected", "inserted", "updated", "unchanged", "deleted", "seconds", "reconciled"]
    list_filter = ["sheet", "reconciled"]
    list_select_related = ["run"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SheetRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Reject)
class RejectAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "sheet", "row_number", "reason", "column", "message", "status"]
    list_filter = ["run", "sheet", "reason", "status"]
    search_fields = ["message", "original"]
    list_select_related = ["run"]
    readonly_fields = ["run", "sheet", "row_number", "reason", "column", "message", "original", "triaged_at", "triaged_by"]

    def has_add_permission(self, request):
        return False


@admin.register(DataQualityIssue)
class DataQualityIssueAdmin(admin.ModelAdmin):
    list_display = ["kind", "entity", "key", "row_count", "measured", "status", "first_seen_run", "last_seen_run"]
    list_filter = ["status", "kind", "entity"]
    search_fields = ["key", "detail"]
    list_select_related = ["first_seen_run", "last_seen_run"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in DataQualityIssue._meta.fields]

    def has_add_permission(self, request):
        return False
