"""App config for the shared kernel (API keys, system checks)."""

from django.apps import AppConfig


class ProdplanConfig(AppConfig):
    name = "prodplan"
    verbose_name = "PRODPLAN"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prodplan import deploy_guard, schema  # noqa: F401 - register the deploy check and the OpenAPI auth extension
        from prodplan.tracing import configure_tracing

        configure_tracing()  # no-op unless OTEL_EXPORTER_OTLP_ENDPOINT is set
