"""App config: SmartInventory: WIP, WIP mass and theoretical gelcoat use."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = gettext_lazy("Inventory")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from inventory import receivers  # noqa: F401 - subscribes to prodplan.signals.data_changed
