"""Admin for the ingestion audit and the steward's reject triage."""

from django.contrib import admin, messages
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ingestion import labels
from ingestion.choices import REJECT_REASON_HELP, TriageStatus
from ingestion.contract import SHEETS_BY_NAME
from ingestion.models import DataQualityIssue, IngestionRun, Reject, SheetRun
from ingestion.triage import (
    CorrectionsRejected,
    rejects_export_xlsx,
    rejects_import_corrections,
    rejects_revalidate,
    rejects_set_status,
)


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


def _cells_table(reject, cells: dict):
    """A row's cells by header, the failing column highlighted."""
    spec = SHEETS_BY_NAME.get(reject.sheet)
    headers = spec.headers if spec else list(cells)
    rows = format_html_join(
        "", "<tr><th>{}</th><td{}>{}</td></tr>",
        ((h, mark_safe(' style="background:#fde2e1"') if h == reject.column else "", "" if cells.get(h) is None else cells.get(h))
         for h in headers),
    )
    return format_html("<table>{}</table>", rows)


@admin.register(Reject)
class RejectAdmin(admin.ModelAdmin):
    """The steward's triage queue: filter, read the original row, acknowledge / ignore / export / re-validate."""

    list_display = ["id", "run_number", "sheet", "row_number", "reason", "message_text", "status"]  # the message names the column
    # Only runs that have rejects (a no-op or clean run would be an empty choice).
    list_filter = [("run", admin.RelatedOnlyFieldListFilter), "sheet", "reason", "status"]
    search_fields = ["message", "original__icontains"]
    list_select_related = ["run"]
    readonly_fields = ["run", "sheet", "row_number", "reason", "reason_help", "column", "message_text", "original_row",
                       "corrected_row", "status", "triaged_at", "triaged_by"]
    exclude = ["original", "corrected", "message"]  # shown as message_text, in words
    actions = ["acknowledge", "ignore", "export_xlsx", "revalidate"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("run"), ordering="run_id")
    def run_number(self, obj):
        # A short column: the full run label (status, file name) is one click away and in the filter.
        return f"#{obj.run_id}"

    def get_search_results(self, request, queryset, search_term):
        if not search_term:
            return queryset, False
        from django.db.models import Q, TextField
        from django.db.models.functions import Cast

        queryset = queryset.annotate(original_text=Cast("original", TextField()))
        return queryset.filter(Q(message__icontains=search_term) | Q(original_text__icontains=search_term)), False

    @admin.display(description=gettext_lazy("message"), ordering="message")
    def message_text(self, obj):
        return labels.reject_message(obj.message)

    @admin.display(description=gettext_lazy("what the reason means"))
    def reason_help(self, obj):
        return REJECT_REASON_HELP.get(obj.reason, "")

    @admin.display(description=gettext_lazy("original row"))
    def original_row(self, obj):
        return _cells_table(obj, obj.original)

    @admin.display(description=gettext_lazy("corrected row (last import)"))
    def corrected_row(self, obj):
        return _cells_table(obj, obj.corrected) if obj.corrected else "—"

    def get_urls(self):
        from django.urls import path

        return [path("import-corrections/", self.admin_site.admin_view(self.import_corrections_view),
                     name="ingestion_reject_import_corrections"), *super().get_urls()]

    def import_corrections_view(self, request):
        """Upload an export the steward fixed in Excel; rows that now pass are stored and their rejects resolved."""
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import redirect
        from django.template.response import TemplateResponse

        if not self.has_change_permission(request):
            raise PermissionDenied
        error = None
        if request.method == "POST":
            upload = request.FILES.get("corrections")
            if upload is None:
                error = _("Choose the corrected .xlsx (a rejects export with its cells fixed).")
            else:
                try:
                    result = rejects_import_corrections(stream=upload, user=request.user)
                except CorrectionsRejected as exc:
                    error = _("Nothing was imported: %(why)s.") % {"why": labels.corrections_error(str(exc))}
                else:
                    resolved, still, skipped = result["resolved"], len(result["still_rejected"]), len(result["skipped"])
                    self.message_user(request, " ".join((
                        ngettext("%(n)s corrected row stored and its reject resolved;",
                                 "%(n)s corrected rows stored and their rejects resolved;", resolved) % {"n": resolved},
                        ngettext("%(n)s still fails;", "%(n)s still fail;", still) % {"n": still},
                        ngettext("%(n)s skipped.", "%(n)s skipped.", skipped) % {"n": skipped})), messages.SUCCESS)
                    for row in result["still_rejected"][:20]:
                        self.message_user(request, _("%(sheet)s file row %(row)s (reject %(id)s): still %(reason)s") % {
                            "sheet": row["sheet"], "row": row["file_row"], "id": row["reject_id"],
                            "reason": labels.reject_reason(row["reason"])}, messages.WARNING)
                    for row in result["skipped"][:20]:
                        self.message_user(request, _("%(sheet)s file row %(row)s: skipped, %(why)s") % {
                            "sheet": row["sheet"], "row": row["file_row"], "why": labels.skip_reason(row["why"])}, messages.WARNING)
                    return redirect("admin:ingestion_reject_changelist")
        return TemplateResponse(request, "admin/ingestion/reject/import_corrections.html", {
            **self.admin_site.each_context(request), "title": _("Import corrected rejects"), "error": error,
            "opts": self.model._meta,
        }, status=400 if error else 200)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context=extra_context)
        if hasattr(response, "context_data") and "cl" in response.context_data:
            from django.db.models import Count

            queryset = response.context_data["cl"].queryset
            counts = queryset.order_by().values("reason").annotate(rows=Count("id")).order_by("-rows")
            response.context_data["reason_counts"] = [
                {**row, "help": REJECT_REASON_HELP.get(row["reason"], "")} for row in counts
            ]
        return response

    def _confirm(self, request, queryset, action, title, question):
        from django.template.response import TemplateResponse

        preview = [str(obj) for obj in queryset[:10]]
        total = queryset.count()
        return TemplateResponse(
            request, "admin/ingestion/confirm_action.html",
            {**self.admin_site.each_context(request), "title": title, "question": question, "queryset": queryset,
             "preview": preview, "more": max(0, total - len(preview)), "action": action, "opts": self.model._meta},
        )

    def _set_status(self, request, queryset, *, action: str, status: str, title: str):
        """Confirm first, then set the triage status and say how many rejects changed."""
        if request.POST.get("confirm") != "yes":
            total = queryset.count()
            return self._confirm(request, queryset, action, title, ngettext(
                "Mark %(n)s reject as “%(status)s”?", "Mark %(n)s rejects as “%(status)s”?", total) % {
                "n": total, "status": TriageStatus(status).label})
        count = rejects_set_status(reject_ids=list(queryset.values_list("pk", flat=True)), status=status, user=request.user)
        self.message_user(request, ngettext("%(n)s reject marked as “%(status)s”.", "%(n)s rejects marked as “%(status)s”.",
                                            count) % {"n": count, "status": TriageStatus(status).label}, messages.SUCCESS)
        return None

    @admin.action(description=gettext_lazy("Acknowledge the selected rejects"), permissions=["change"])
    def acknowledge(self, request, queryset):
        return self._set_status(request, queryset, action="acknowledge", status=TriageStatus.ACKNOWLEDGED,
                                title=_("Acknowledge rejects"))

    @admin.action(description=gettext_lazy("Ignore the selected rejects"), permissions=["change"])
    def ignore(self, request, queryset):
        return self._set_status(request, queryset, action="ignore", status=TriageStatus.IGNORED, title=_("Ignore rejects"))

    @admin.action(description=gettext_lazy("Export the selected rejects to Excel (.xlsx)"), permissions=["view"])
    def export_xlsx(self, request, queryset):
        from django.http import HttpResponse

        response = HttpResponse(content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = 'attachment; filename="rejects.xlsx"'
        count = rejects_export_xlsx(reject_ids=list(queryset.values_list("pk", flat=True)), stream=response)
        response["X-Exported-Rows"] = str(count)
        return response

    @admin.action(description=gettext_lazy("Re-validate the selected rejects against the current data"), permissions=["change"])
    def revalidate(self, request, queryset):
        if request.POST.get("confirm") != "yes":
            total = queryset.count()
            return self._confirm(
                request, queryset, "revalidate", _("Re-validate rejects"),
                ngettext("Re-check %(n)s reject? A row that now passes is stored in the domain tables.",
                         "Re-check %(n)s rejects? Rows that now pass are stored in the domain tables.", total) % {"n": total},
            )
        result = rejects_revalidate(reject_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
        self.message_user(
            request, " ".join((
                ngettext("%(n)s reject now passes and was stored;", "%(n)s rejects now pass and were stored;",
                         result["resolved"]) % {"n": result["resolved"]},
                ngettext("%(n)s still fails.", "%(n)s still fail.", result["still_rejected"]) % {"n": result["still_rejected"]},
            )), messages.SUCCESS
        )
        return None


@admin.register(DataQualityIssue)
class DataQualityIssueAdmin(admin.ModelAdmin):
    list_display = ["kind", "sheet_column", "key", "row_count", "match_rate", "status", "first_seen", "last_seen"]
    list_filter = ["status", "kind", "entity"]
    search_fields = ["key", "detail"]

    @admin.display(description=gettext_lazy("sheet.column"), ordering="entity")
    def sheet_column(self, obj):
        sheet, _, column = obj.entity.partition(".")
        # A break opportunity after the sheet: the long sheet.column names otherwise widen the table off screen.
        return format_html("{}.<wbr>{}", sheet, column) if column else obj.entity

    @admin.display(description=gettext_lazy("match rate"), ordering="measured")
    def match_rate(self, obj):
        return "" if obj.measured is None else number_format(round(obj.measured * 100, 1), 1) + "%"

    @admin.display(description=gettext_lazy("detail"))
    def detail_text(self, obj):
        return labels.issue_detail(kind=obj.kind, entity=obj.entity, key=obj.key, row_count=obj.row_count,
                                   measured=obj.measured, detail=obj.detail)

    @admin.display(description=gettext_lazy("first seen (run)"), ordering="first_seen_run_id")
    def first_seen(self, obj):
        return f"#{obj.first_seen_run_id}"

    @admin.display(description=gettext_lazy("last seen (run)"), ordering="last_seen_run_id")
    def last_seen(self, obj):
        return f"#{obj.last_seen_run_id}"

    def get_readonly_fields(self, request, obj=None):
        # The stored detail is the run's English audit text: the form shows it in words of the reader's language.
        return [("detail_text" if f.name == "detail" else f.name) for f in DataQualityIssue._meta.fields]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request):
        return False
