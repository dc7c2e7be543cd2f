"""manage.py eta_backtest: predict the remaining time of the orders open at weekly past dates and score it."""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.management import CommandError

from mlops.services import eta_backtest_record
from prodplan.asof import data_as_of
from prodplan.commands import DatabaseCommand, start_option

DEFAULT_WEEKS = 12
DEFAULT_HORIZON_DAYS = 35  # room after the last date for most outcomes to be known


class Command(DatabaseCommand):
    help = ("Predict the remaining time (ETA) of every order open at --weeks weekly dates from --start with a model "
            "retrained at each date on only what was known then (or --active-model), score the 80% interval, MAE and "
            "bias against the real finishes by progress bucket, store the result and print it.")

    def add_arguments(self, parser):
        parser.add_argument("--start", help="First date (YYYY-MM-DD, its first instant); default: the data's as-of "
                                            f"minus the weeks and {DEFAULT_HORIZON_DAYS} days.")
        parser.add_argument("--weeks", type=int, default=DEFAULT_WEEKS)
        parser.add_argument("--seed", type=int, default=0, help="Seed of the training moments and the model.")
        parser.add_argument("--active-model", action="store_true",
                            help="Use the active model (only at dates after every fact it was trained and calibrated "
                                 "on) instead of retraining at each date.")
        parser.add_argument("--json", dest="json_out", help="Also write the whole result (every prediction) here.")

    def handle(self, *args, start=None, weeks=DEFAULT_WEEKS, seed=0, active_model=False, json_out=None, **options):
        if weeks < 1:
            raise CommandError("--weeks must be at least 1")
        as_of = data_as_of()
        start_at = start_option(start, default=lambda: as_of and as_of - timedelta(
            days=7 * (weeks - 1) + DEFAULT_HORIZON_DAYS))
        record, result = eta_backtest_record(start=start_at, weeks=weeks, use_active_model=active_model, seed=seed)
        summary = {
            "backtest_id": record.pk, "start": record.start.isoformat(), "weeks": record.weeks,
            "model_source": record.model_source, "data_as_of": record.data_as_of.isoformat() if record.data_as_of else None,
            "scored": record.scored, "covered": record.covered, "coverage": record.coverage,
            "finished": record.finished, "mae_days": record.mae_days, "bias_days": record.bias_days,
            "never_finished_misses": record.never_finished, "unknown_excluded": record.unknown,
            "stalled_excluded": record.stalled, "by_bucket": record.by_bucket, "by_state": record.by_state,
            "weekly": [{k: w.get(k) for k in ("date", "open", "stalled", "n", "covered", "coverage", "mae_days",
                                              "bias_days", "skipped")} for w in record.weekly],
        }
        if json_out:
            with open(json_out, "w") as handle:
                json.dump({**summary, "details": result["details"]}, handle, indent=1, default=str)
        self.stdout.write(json.dumps(summary, indent=2, default=str))
