"""manage.py bottleneck_backtest: rank bottlenecks at weekly past dates and score #1 against the queue measured next."""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.management import CommandError

from orders.services import bottleneck_backtest_record
from prodplan.asof import data_as_of
from prodplan.commands import DatabaseCommand, start_option


class Command(DatabaseCommand):
    help = ("Rank the bottleneck phases at --weeks weekly dates from --start with only what was known then; score #1 "
            "against the phase with the most queue time measured over the next 4 weeks; store and print the score.")

    def add_arguments(self, parser):
        parser.add_argument("--start", help="First date (YYYY-MM-DD); default: the data's as-of minus weeks and horizon.")
        parser.add_argument("--weeks", type=int, default=26)
        parser.add_argument("--horizon-days", type=int, default=28)

    def handle(self, *args, start=None, weeks=26, horizon_days=28, **options):
        if weeks < 1:
            raise CommandError("--weeks must be at least 1")
        if horizon_days < 1:
            raise CommandError("--horizon-days must be at least 1")
        as_of = data_as_of()
        start_at = start_option(start, default=lambda: as_of and as_of - timedelta(days=7 * (weeks - 1) + horizon_days))
        result = bottleneck_backtest_record(start=start_at, weeks=weeks, horizon_days=horizon_days)
        naive = [w for w in result.weekly if w["naive_hit"] is not None]
        self.stdout.write(json.dumps({
            "backtest_id": result.pk, "start": result.start.isoformat(), "weeks": result.weeks,
            "horizon_days": result.horizon_days, "scored_weeks": result.scored_weeks, "hits": result.hits,
            "hit_rate": round(result.hits / result.scored_weeks, 4) if result.scored_weeks else None,
            "naive_last_window_hits": sum(1 for w in naive if w["naive_hit"]),
            "weekly": [{k: w[k] for k in ("date", "predicted_name", "actual_name", "hit")} for w in result.weekly],
        }, indent=2, default=str))
