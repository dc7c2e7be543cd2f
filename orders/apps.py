"""App config: Catalogue, manufacturing orders, WIP, bottlenecks, risk queue and KPIs."""

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders import checks  # noqa: F401 - its release-gate checks (prodplan.checks.release_checks)
