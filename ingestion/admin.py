"""Admin for the ingestion audit and the steward's reject triage."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ingestion import labels
from ingestion.choices import REJECT_REASON_HELP, TriageStatus
from ingestion.contract import SHEETS_BY_NAME
from ingestion.models import DataQualityIssue, IngestionRun, Reject, SheetRun
from ingestion.selectors import issue_order_ids, orphan_check_of
from ingestion.triage import (
    CLOSED_STATUSES,
    CorrectionsRejected,
    corrections_report_csv,
    corrections_report_rows,
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
    list_display = ["run_id", "file_name", "status", "trigger", "created_at", "duration_seconds", "as_of"]
    list_filter = ["status", "trigger"]
    search_fields = ["file_name", "file_sha256"]
    date_hierarchy = "created_at"
    inlines = [SheetRunInline]

    @admin.display(description=gettext_lazy("id"), ordering="id")
    def run_id(self, obj):
        return str(obj.pk)  # an id, not a quantity: no thousands separator

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


class RejectStatusFilter(admin.SimpleListFilter):
    """Status, open by default (the steward's queue); “All” clears it."""

    title = gettext_lazy("status")
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request, model_admin):
        return TriageStatus.choices

    def value(self):
        return super().value() or TriageStatus.OPEN.value

    def choices(self, changelist):
        yield {"selected": self.value() == self.ALL, "display": _("All"),
               "query_string": changelist.get_query_string({self.parameter_name: self.ALL})}
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == str(lookup), "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup})}

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value == self.ALL else queryset.filter(status=value)


CORRECTIONS_REPORT_SESSION_KEY = "ingestion_corrections_report"


@admin.register(Reject)
class RejectAdmin(admin.ModelAdmin):
    """The steward's triage queue: filter, read the original row, acknowledge / ignore / export / re-validate."""

    # Ids and row numbers as plain integers (a localised 1.234 is not an id); the message names the column.
    list_display = ["reject_id", "run_number", "sheet", "excel_row", "reason", "message_text", "status", "seen"]
    # Only runs that have rejects (a no-op or clean run would be an empty choice); open rejects by default.
    list_filter = [RejectStatusFilter, ("run", admin.RelatedOnlyFieldListFilter), "sheet", "reason"]
    search_fields = ["message", "original__icontains"]
    list_select_related = ["run"]
    readonly_fields = ["run", "first_seen_run", "times_seen", "sheet", "excel_row", "reason", "reason_help", "column",
                       "message_text", "original_row", "corrected_row", "status", "triaged_at", "triaged_by", "closed_in_run",
                       "identity"]
    exclude = ["original", "corrected", "message", "row_number"]  # shown as message_text (in words) and excel_row
    actions = ["acknowledge", "ignore", "export_xlsx", "revalidate"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("id"), ordering="id")
    def reject_id(self, obj):
        return str(obj.pk)

    @admin.display(description=gettext_lazy("row number"), ordering="row_number")
    def excel_row(self, obj):
        return str(obj.row_number)

    @admin.display(description=gettext_lazy("runs that met it"), ordering="times_seen")
    def seen(self, obj):
        return str(obj.times_seen)

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
                     name="ingestion_reject_import_corrections"),
                path("import-corrections/report.csv", self.admin_site.admin_view(self.corrections_report_view),
                     name="ingestion_reject_corrections_report"),
                path("<int:object_id>/triage/", self.admin_site.admin_view(self.triage_view),
                     name="ingestion_reject_triage"), *super().get_urls()]

    def triage_view(self, request, object_id):
        """Acknowledge or ignore one reject from its detail page (POST), then back to it."""
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponseNotAllowed
        from django.shortcuts import get_object_or_404, redirect

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        reject = get_object_or_404(Reject, pk=object_id)
        if not self.has_change_permission(request, reject):
            raise PermissionDenied
        status = request.POST.get("status")
        if status not in (TriageStatus.ACKNOWLEDGED, TriageStatus.IGNORED, TriageStatus.OPEN) or reject.status in CLOSED_STATUSES:
            self.message_user(request, _("This reject cannot take that decision."), messages.ERROR)
        else:
            rejects_set_status(reject_ids=[reject.pk], status=status, user=request.user)
            self.message_user(request, _("Reject %(id)s marked as “%(status)s”.") % {
                "id": reject.pk, "status": TriageStatus(status).label}, messages.SUCCESS)
        return redirect("admin:ingestion_reject_change", reject.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        reject = self.get_object(request, object_id)
        decisions = []
        if reject is not None and reject.status not in CLOSED_STATUSES and self.has_change_permission(request, reject):
            decisions = [(s, TriageStatus(s).label, label) for s, label in (
                (TriageStatus.ACKNOWLEDGED, _("Acknowledge")), (TriageStatus.IGNORED, _("Ignore")),
                (TriageStatus.OPEN, _("Reopen"))) if s != reject.status]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "triage_decisions": decisions})

    def corrections_report_view(self, request):
        """The last corrections import's report of this session (CSV: sheet, file row, reject, result, reason)."""
        from django.core.exceptions import PermissionDenied
        from django.http import Http404, HttpResponse

        if not self.has_change_permission(request):
            raise PermissionDenied
        rows = request.session.get(CORRECTIONS_REPORT_SESSION_KEY)
        if rows is None:
            raise Http404(_("No corrections import in this session."))
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="corrections-report.csv"'
        corrections_report_csv(rows, response)
        return response

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
                    request.session[CORRECTIONS_REPORT_SESSION_KEY] = corrections_report_rows(result)
                    # One summary, the rows in the downloadable report (not a warning per row).
                    self.message_user(request, format_html("{} <a href=\"{}\">{}</a>", " ".join((
                        ngettext("%(n)s corrected row stored and its reject resolved;",
                                 "%(n)s corrected rows stored and their rejects resolved;", resolved) % {"n": resolved},
                        ngettext("%(n)s still fails;", "%(n)s still fail;", still) % {"n": still},
                        ngettext("%(n)s skipped.", "%(n)s skipped.", skipped) % {"n": skipped})),
                        reverse("admin:ingestion_reject_corrections_report"),
                        _("Download the report (row, result, reason)")), messages.SUCCESS)
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


def _orders_url(ids: list[int]) -> str:
    # An empty id__in would list every order: an impossible id lists none.
    return reverse("admin:orders_manufacturingorder_changelist") + "?id__in=" + (",".join(map(str, ids)) or "0")


@admin.register(DataQualityIssue)
class DataQualityIssueAdmin(admin.ModelAdmin):
    list_display = ["kind", "sheet_column", "key", "row_count", "match_rate", "status", "first_seen", "last_seen", "orders_link"]
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

    @admin.display(description=gettext_lazy("orders"))
    def orders_link(self, obj):
        """A link that opens the orders this issue's rows belong to (computed on click: the list stays one query)."""
        if orphan_check_of(obj) is None:
            return ""
        return format_html('<a href="{}">{}</a>', reverse("admin:ingestion_dataqualityissue_orders", args=[obj.pk]),
                           _("see the orders"))

    @admin.display(description=gettext_lazy("orders affected"))
    def affected_orders(self, obj):
        found = issue_order_ids(obj) if obj else None
        if found is None:
            return _("This issue does not name rows of stored orders.")
        ids, total = found
        if not total:
            return _("No stored order has these rows now.")
        shown = ngettext("%(n)s order", "%(n)s orders", total) % {"n": total}
        if total > len(ids):
            shown = _("%(shown)s (the link opens the first %(limit)s)") % {"shown": shown, "limit": len(ids)}
        return format_html('<a href="{}">{}</a>', _orders_url(ids), shown)

    def get_urls(self):
        from django.urls import path

        return [path("<int:object_id>/orders/", self.admin_site.admin_view(self.orders_view),
                     name="ingestion_dataqualityissue_orders"), *super().get_urls()]

    def orders_view(self, request, object_id):
        """To the admin's order list filtered to the orders the issue's rows belong to."""
        from django.core.exceptions import PermissionDenied
        from django.http import Http404
        from django.shortcuts import get_object_or_404, redirect

        if not self.has_view_permission(request):
            raise PermissionDenied
        found = issue_order_ids(get_object_or_404(DataQualityIssue, pk=object_id))
        if found is None:
            raise Http404(_("This issue does not name rows of stored orders."))
        return redirect(_orders_url(found[0]))

    def get_readonly_fields(self, request, obj=None):
        # The stored detail is the run's English audit text: the form shows it in words of the reader's language.
        return [("detail_text" if f.name == "detail" else f.name) for f in DataQualityIssue._meta.fields] + ["affected_orders"]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request):
        return False
