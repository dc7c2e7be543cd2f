"""App config: What-if scenarios and the deterministic simulation engine."""

from django.apps import AppConfig


class WhatifConfig(AppConfig):
    name = "whatif"
    default_auto_field = "django.db.models.BigAutoField"
