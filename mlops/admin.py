"""Admin for the model registry (browse versions, promote one whose recorded evidence passes the rule) and predictions."""

from django.contrib import admin, messages
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mlops import services
from mlops.models import ModelVersion, Prediction


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "algorithm", "active", "data_version", "validation_start", "test_start",
                    "training_seconds", "created_at", "promotion"]
    list_filter = ["name", "algorithm", "active"]
    search_fields = ["=version", "promotion_reason"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["promote"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("promotion"))
    def promotion(self, obj):
        """The stored promotion_reason is English (API, logs): the list says the verdict and what failed in words."""
        from mlops.views import promotion_evidence_view

        evidence = promotion_evidence_view(obj)
        if evidence is None:
            return obj.promotion_reason or "—"
        return "; ".join([str(evidence["verdict_label"]), *evidence.get("failed", [])])

    @admin.action(description=gettext_lazy("Promote to active (only if its recorded promotion evidence passes the rule)"))
    def promote(self, request, queryset):
        for version in queryset:
            try:
                services.model_version_promote(model_version=version, reason="promoted by hand in admin")
                self.message_user(request, _("%(model)s is now active.") % {"model": version.label}, messages.SUCCESS)
            except services.PromotionRefused as exc:
                self.message_user(request, _("%(model)s refused: %(why)s") % {"model": version.label, "why": exc}, messages.WARNING)


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["order_id", "name", "value", "lower", "upper", "predicted_finish", "model_label", "as_of"]
    list_filter = ["name", "model_label"]
    search_fields = ["=order_id"]
    list_select_related = ["model_version"]
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request):
        return False
