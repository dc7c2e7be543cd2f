"""manage.py whatif_backtest: simulate the baseline from a past date's WIP and compare with reality."""

from __future__ import annotations

import json

from django.core.management import CommandError

from prodplan.asof import data_as_of
from prodplan.commands import DatabaseCommand, start_option
from whatif.services import default_backtest_start, whatif_backtest_run


class Command(DatabaseCommand):
    help = "Backtest the what-if baseline: WIP of a past date + real arrivals, N weeks, weekly completions vs reality."

    def add_arguments(self, parser):
        parser.add_argument("--start", help="Start date (YYYY-MM-DD); default: the data's as-of minus --weeks.")
        parser.add_argument("--weeks", type=int, default=8)
        parser.add_argument("--replications", type=int, default=5)

    def handle(self, *args, start=None, weeks=8, replications=5, **options):
        if weeks < 1:
            raise CommandError("--weeks must be at least 1")
        as_of = data_as_of()
        start_at = start_option(start, default=lambda: as_of and default_backtest_start(as_of=as_of, weeks=weeks))
        bt = whatif_backtest_run(start=start_at, weeks=weeks, replications=replications)
        self.stdout.write(json.dumps({
            "backtest_id": bt.pk, "start": bt.start.isoformat(), "weeks": bt.weeks,
            "simulated_weekly": bt.simulated_weekly, "actual_weekly": bt.actual_weekly,
            "mape": bt.mape, "total_error": bt.total_error, "wip_orders": bt.details["wip_orders"],
            "real_arrivals": bt.details["real_arrivals"], "seconds": bt.details["seconds"],
        }, indent=2))
