"""App config: Workbook ingestion: reader, staging, validation, rejects, merge and audit."""

from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    default_auto_field = "django.db.models.BigAutoField"
