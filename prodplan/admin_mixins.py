"""Admin building blocks shared by the apps."""

from django.contrib import admin


class IngestedReadOnlyAdmin(admin.ModelAdmin):
    """Rows that come from the workbook: browsable, never edited by hand (the next ingestion would undo it)."""

    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over half a million rows on every page is wasted work

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
