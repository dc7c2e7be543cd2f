"""App config: Quality errors and their analytics."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class QualityConfig(AppConfig):
    name = "quality"
    verbose_name = gettext_lazy("Quality")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prodplan.pages import add_panel
        from quality import receivers  # noqa: F401 - subscribes to prodplan.signals.data_changed
        from quality.selectors import order_errors

        add_panel("order-detail", "errors", order_errors)
