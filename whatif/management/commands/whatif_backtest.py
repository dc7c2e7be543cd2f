"""manage.py whatif_backtest: simulate the baseline from past dates' WIP and score it, beside two naive forecasts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management import CommandError

from prodplan.asof import data_as_of
from prodplan.commands import DatabaseCommand, start_option
from whatif.services import (
    BACKTEST_RULE,
    backtest_summary,
    default_backtest_start,
    whatif_backtest_run,
    whatif_backtest_series,
)


def _row(bt) -> dict:
    d = bt.details
    return {
        "backtest_id": bt.pk, "start": bt.start.isoformat(), "weeks": bt.weeks,
        "simulated_weekly": bt.simulated_weekly, "actual_weekly": bt.actual_weekly,
        "mape": bt.mape, "total_error": bt.total_error, "wip_orders": d["wip_orders"],
        "real_arrivals": d["real_arrivals"], "seconds": d["seconds"],
        "lead_time_days": {"actual": d["actual"]["lead_time"], "simulation": d["simulation"]["lead_time"],
                           **{name: f["lead_time"] for name, f in d["naive"].items()}},
        "wip_at_end": {"actual": d["actual"]["wip_at_end"], "simulation": d["simulation"]["wip_at_end"],
                       **{name: f["wip_at_end"] for name, f in d["naive"].items()}},
        "errors": d["errors"],
    }


class Command(DatabaseCommand):
    help = ("Backtest the what-if baseline: WIP of past dates + real arrivals, N weeks; weekly completions, lead time "
            "and WIP at the end against reality, beside two naive forecasts.")

    def add_arguments(self, parser):
        parser.add_argument("--start", help="One start date (YYYY-MM-DD); default: several dates (--dates).")
        parser.add_argument("--weeks", type=int, default=8)
        parser.add_argument("--replications", type=int, default=5)
        parser.add_argument("--dates", type=int, default=1,
                            help="Number of start dates, --step-weeks apart, the last one --weeks before the as-of.")
        parser.add_argument("--step-weeks", type=int, default=8)
        parser.add_argument("--out", help="Also write the figures (with a 'met' dict) to this JSON file.")

    def handle(self, *args, start=None, weeks=8, replications=5, dates=1, step_weeks=8, out=None, **options):
        if weeks < 1 or dates < 1 or step_weeks < 1 or replications < 1:
            raise CommandError("--weeks, --dates, --step-weeks and --replications must be at least 1")
        as_of = data_as_of()
        if start or dates == 1:
            start_at = start_option(start, default=lambda: as_of and default_backtest_start(as_of=as_of, weeks=weeks))
            backtests = [whatif_backtest_run(start=start_at, weeks=weeks, replications=replications)]
            summary = backtest_summary(backtests)
        else:
            if as_of is None:
                raise CommandError("No data as-of: ingest a workbook first.")
            backtests, summary = whatif_backtest_series(end=as_of, weeks=weeks, dates=dates, step_weeks=step_weeks,
                                                        replications=replications)
        report = {**_row(backtests[-1]), "backtests": [_row(b) for b in backtests], "summary": summary}
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps({
                "benchmark": "whatif_backtest",
                "command": "manage.py whatif_backtest " + " ".join(sys.argv[2:]),
                "as_of": as_of.isoformat() if as_of else None,
                "rule": BACKTEST_RULE,
                "model": {k: backtests[-1].details["model"].get(k) for k in
                          ("capacity_rule", "calendar_rule", "duration_rule", "wait_rule", "delay_load_rule", "rework_rule",
                           "calendar")},
                "backtests": report["backtests"],
                "mean_absolute_errors": summary["mean_absolute_errors"],
                "met": summary["met"],
            }, indent=2) + "\n")
        self.stdout.write(json.dumps(report, indent=2))
