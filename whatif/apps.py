"""App config: What-if scenarios and the deterministic simulation engine."""

from django.apps import AppConfig
from django.core.management import call_command
from django.utils.translation import gettext_lazy


class WhatifConfig(AppConfig):
    name = "whatif"
    verbose_name = gettext_lazy("What-if simulation")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prodplan.demo import add_demo_step

        add_demo_step(40, "whatif.backtest", _demo_backtest)


def _demo_backtest(options: dict, say) -> None:
    """manage.py demo: the what-if page shows the simulator's backtest next to every scenario: give it one."""
    call_command("whatif_backtest")
