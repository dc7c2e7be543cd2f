"""App config: Catalogue, manufacturing orders, WIP, bottlenecks, risk queue and KPIs."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = gettext_lazy("Orders and catalogue")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders import checks, receivers  # noqa: F401 - release-gate checks; subscribes to data_changed
