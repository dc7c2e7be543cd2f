"""App config: SmartInventory: WIP, WIP mass and theoretical gelcoat use."""

from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    default_auto_field = "django.db.models.BigAutoField"
