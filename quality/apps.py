"""App config: Quality errors and their analytics."""

from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "quality"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prodplan.pages import add_panel
        from quality.selectors import order_errors

        add_panel("order-detail", "errors", order_errors)
