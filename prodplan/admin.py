"""Admin for API keys: created here (the raw key is shown once), revoked with an action."""

from django.contrib import admin, messages
from django.utils import timezone

from prodplan.models import ApiKey, hash_api_key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    def save_model(self, request, obj, form, change):
        if not change:
            import secrets

            raw = "pp_" + secrets.token_urlsafe(32)
            obj.prefix = raw[:8]
            obj.key_hash = hash_api_key(raw)
            super().save_model(request, obj, form, change)
            messages.warning(request, f"New API key for {obj.name}: {raw} — copy it now, it is not stored and will not be shown again.")
        else:
            super().save_model(request, obj, form, change)

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} API key(s) revoked.")
