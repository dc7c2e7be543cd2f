"""Writes of the what-if domain: request, execute and store scenario runs; run and store backtests."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from prodplan.cache import data_version
from prodplan.gates import THEORETICAL
from prodplan.metrics import WHATIF_DURATION, WHATIF_RUNS
from prodplan.stats import percentile
from prodplan.task_queue import PENDING_RUN_PICKUP_SECONDS, enqueue_run, task_named
from whatif import engine
from whatif.choices import RunStatus
from whatif.models import WhatIfBacktest, WhatIfRun
from whatif.selectors import (
    cached_sim_input,
    gather_sim_input,
    order_outcomes,
    trailing_flow,
    weekly_completions,
)

logger = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 56
DEFAULT_ARRIVAL_WEEKS = 8
ASYNC_HORIZON_DAYS = 182  # longer horizons run as a Celery task (202 + id)
BACKTEST_REPLICATIONS = 5
NAIVE_TRAILING_WEEKS = 8


def canonical_inputs(*, validated: dict, as_of: datetime) -> dict:
    """The scenario in one canonical form: defaults filled, as-of resolved, overrides sorted."""
    cap = []
    for c in validated.get("capacity_overrides") or []:
        item = {"phase_id": int(c["phase_id"])}
        if c.get("servers") is not None:
            item["servers"] = int(c["servers"])
        else:
            item["multiplier"] = float(c["multiplier"])
        cap.append(item)
    coef = [
        {"phase_id": c.get("phase_id"), "family": c.get("family") or None, "product_id": c.get("product_id"),
         "multiplier": float(c["multiplier"])}
        for c in validated.get("coef_overrides") or []
    ]
    return {
        "as_of": as_of.isoformat(),
        "priority_rule": validated.get("priority_rule") or "FIFO",
        "capacity_overrides": sorted(cap, key=lambda c: json.dumps(c, sort_keys=True)),
        "coef_overrides": sorted(coef, key=lambda c: json.dumps(c, sort_keys=True)),
        "horizon_days": int(validated.get("horizon_days") or DEFAULT_HORIZON_DAYS),
        "arrivals": bool(validated.get("arrivals", True)),
        "arrival_weeks": int(validated.get("arrival_weeks") or DEFAULT_ARRIVAL_WEEKS),
        "seed": int(validated.get("seed") or 0),
    }


def input_hash(canonical: dict) -> str:
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()




def _lost_in_queue(run: WhatIfRun) -> bool:
    return (run.status == RunStatus.PENDING and run.started_at is None
            and run.created_at < timezone.now() - timedelta(seconds=PENDING_RUN_PICKUP_SECONDS))


def whatif_run_request(*, inputs: dict, run_async: bool = False) -> tuple[WhatIfRun, bool]:
    """Return the stored run of this scenario on the current data, or create (and run) it.

    Returns (run, computed_now). Async runs are queued after commit and come back pending."""
    digest, version = input_hash(inputs), data_version()
    try:
        with transaction.atomic():
            run, created = WhatIfRun.objects.get_or_create(
                input_hash=digest, data_version=version, defaults={"inputs": inputs})
    except IntegrityError:  # a concurrent request created it first
        run, created = WhatIfRun.objects.get(input_hash=digest, data_version=version), False
    if not created and run.status != RunStatus.FAILED and not _lost_in_queue(run):
        WHATIF_RUNS.labels(outcome="reused").inc()
        return run, False
    if run_async or inputs["horizon_days"] > ASYNC_HORIZON_DAYS:
        task = task_named("whatif.tasks.whatif_run_task")  # tasks import services, never the reverse
        WhatIfRun.objects.filter(pk=run.pk).update(status=RunStatus.PENDING, error="")
        # A broker outage fails the run (an identical request then computes it again) and answers 503.
        transaction.on_commit(lambda: enqueue_run(task, runs=WhatIfRun.objects, run_id=run.pk))
        run.refresh_from_db()
        return run, True
    return whatif_run_execute(run_id=run.pk), True


def whatif_run_execute(*, run_id: int) -> WhatIfRun:
    """Gather the data at the run's as-of, simulate baseline and scenario, store the outputs."""
    run = WhatIfRun.objects.get(pk=run_id)
    if run.status == RunStatus.SUCCEEDED:
        return run
    t0 = time.perf_counter()
    WhatIfRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=timezone.now(), error="")
    try:
        inputs = run.inputs
        sim_input = cached_sim_input(
            as_of=datetime.fromisoformat(inputs["as_of"]), arrival_weeks=inputs["arrival_weeks"],
            with_risk=inputs["priority_rule"] == "RISK_FIRST")
        t1 = time.perf_counter()
        result = engine.simulate(sim_input, engine.Scenario.from_inputs(inputs))
        t2 = time.perf_counter()
    except Exception as exc:  # stored on the run so the client sees why; re-requesting retries it
        logger.exception("what-if run failed", extra={"run_id": run.pk})
        WhatIfRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error=str(exc)[:2000],
                                                    finished_at=timezone.now())
        WHATIF_RUNS.labels(outcome="failed").inc()
        run.refresh_from_db()
        return run
    meta = sim_input.meta
    notes = []
    outputs = {
        **result,
        "basis": THEORETICAL,
        "coverage": meta.get("progress_located_coverage"),
        "model": {**meta, "engine": "heap event loop (same model as the SimPy backend, ~5x faster)",
                  "phases": {str(p): n for p, n in sorted(sim_input.phases.items())
                             if str(p) in result["scenario"]["servers"]}},
        "notes": notes,
        "events_per_second": round(result["steps"] * 2 / (t2 - t1)) if t2 > t1 else None,
    }
    timings = {"gather_ms": round((t1 - t0) * 1000, 1), "simulate_ms": round((t2 - t1) * 1000, 1),
               "total_ms": round((time.perf_counter() - t0) * 1000, 1)}
    WhatIfRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, outputs=outputs, timings=timings,
                                                finished_at=timezone.now())
    WHATIF_RUNS.labels(outcome="succeeded").inc()
    WHATIF_DURATION.observe(t2 - t0)
    run.refresh_from_db()
    return run


def _mape(simulated: list[float], actual: list[int]) -> float | None:
    pairs = [(s, a) for s, a in zip(simulated, actual, strict=True) if a > 0]
    return sum(abs(s - a) / a for s, a in pairs) / len(pairs) if pairs else None


def _lead_summary(days: list[float]) -> dict:
    return {"median": _round(percentile(days, 0.5)), "mean": _round(sum(days) / len(days)) if days else None,
            "n": len(days)}


def _round(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def _forecast_errors(forecast: dict, actual: dict) -> dict:
    """Absolute errors of a forecast against the real figures (None when either is missing)."""
    def err(a, b):
        return None if a is None or b is None else round(abs(a - b), 3)

    return {
        "lead_time_median_days": err(forecast["lead_time"]["median"], actual["lead_time"]["median"]),
        "lead_time_mean_days": err(forecast["lead_time"]["mean"], actual["lead_time"]["mean"]),
        "wip_at_end": err(forecast["wip_at_end"], actual["wip_at_end"]),
        "throughput_mape": _round(_mape(forecast["weekly"], actual["weekly"]), 4),
        "throughput_total_error": err(sum(forecast["weekly"]), sum(actual["weekly"])),
    }


def _naive_forecasts(*, start: datetime, weeks: int, population: list[tuple], wip_now: int) -> dict:
    """The two naive forecasts the simulation must beat, from the NAIVE_TRAILING_WEEKS before start.

    repeat_trailing: the weekly completions of the trailing weeks again (cycled), their orders' lead times,
    and the WIP moving by (created - finished) of those weeks, scaled to the horizon. arrivals_plus_median:
    every order of the population (WIP at start and real arrivals) finishes its trailing median lead time
    after its creation (at start at the earliest)."""
    trailing = trailing_flow(end=start, weeks=NAIVE_TRAILING_WEEKS)
    horizon = timedelta(weeks=weeks)
    repeat = {
        "weekly": [trailing["weekly"][w % NAIVE_TRAILING_WEEKS] for w in range(weeks)],
        "lead_time": _lead_summary(trailing["lead_times"]),
        "wip_at_end": max(0.0, round(wip_now + (trailing["created"] - sum(trailing["weekly"])) * weeks / NAIVE_TRAILING_WEEKS, 3)),
    }
    median = percentile(trailing["lead_times"], 0.5)
    weekly, lead, unfinished = [0] * weeks, [], 0
    for _oid, created, _finished in population:
        if median is None or created is None:
            unfinished += 1
            continue
        finish = max(start, created + timedelta(days=median))
        if finish > start + horizon:
            unfinished += 1
            continue
        weekly[min(int((finish - start).total_seconds() // (7 * 86400)), weeks - 1)] += 1
        lead.append((finish - created).total_seconds() / 86400)
    plus_median = {"weekly": weekly, "lead_time": _lead_summary(lead), "wip_at_end": unfinished,
                   "trailing_median_lead_time_days": _round(median)}
    return {"repeat_trailing": repeat, "arrivals_plus_median": plus_median}


@transaction.atomic
def whatif_backtest_run(*, start: datetime, weeks: int = 8, replications: int = BACKTEST_REPLICATIONS) -> WhatIfBacktest:
    """Simulate the baseline from the WIP at start with the real arrivals that followed and score it against what
    happened, beside the two naive forecasts (BACKTEST_RULE).

    The population is the active WIP at start plus the orders created in the window; real figures are of that
    population: completions per week, lead time (created to finished) of those finished in the window, and those
    still unfinished at the end. The simulated figures pool `replications` seeds (0..n-1)."""
    t0 = time.perf_counter()
    horizon = weeks * 7
    end = start + timedelta(days=horizon)
    sim_input = gather_sim_input(as_of=start, real_arrivals_days=horizon)
    runs = [engine.run_once(sim_input, engine.Scenario(horizon_days=horizon, arrivals=True, seed=s))
            for s in range(replications)]
    simulated = [sum(r["kpis"]["throughput_per_week"][w] for r in runs) / replications for w in range(weeks)]
    sim_lead = [x for r in runs for x in r["lead_times_finished"]]
    sim = {"weekly": [round(x, 3) for x in simulated], "lead_time": _lead_summary(sim_lead),
           "wip_at_end": round(sum(r["kpis"]["wip_at_horizon_end"] for r in runs) / replications, 3)}

    ids = [o.order_id for o in sim_input.orders] + [o.order_id for o in sim_input.fixed_arrivals or []]
    population = order_outcomes(order_ids=[i for i in ids if i is not None])
    weekly, lead, unfinished = [0] * weeks, [], 0
    for _oid, created, finished in population:
        if finished is None or finished > end or finished <= start:
            unfinished += finished is None or finished > end
            continue
        weekly[min(int((finished - start).total_seconds() // (7 * 86400)), weeks - 1)] += 1
        if created is not None and finished >= created:
            lead.append((finished - created).total_seconds() / 86400)
    actual = {"weekly": weekly, "lead_time": _lead_summary(lead), "wip_at_end": unfinished}
    naive = _naive_forecasts(start=start, weeks=weeks, population=population, wip_now=len(sim_input.orders))
    errors = {"simulation": _forecast_errors(sim, actual),
              **{name: _forecast_errors(f, actual) for name, f in naive.items()}}
    all_weekly = weekly_completions(start=start, weeks=weeks)
    mape = _mape(simulated, all_weekly)
    total_error = (sum(simulated) - sum(all_weekly)) / sum(all_weekly) if sum(all_weekly) else None
    return WhatIfBacktest.objects.create(
        start=start, weeks=weeks, data_version=data_version(),
        simulated_weekly=sim["weekly"], actual_weekly=all_weekly,
        mape=None if mape is None else round(mape, 4),
        total_error=None if total_error is None else round(total_error, 4),
        details={
            "replications": replications,
            "wip_orders": len(sim_input.orders),
            "real_arrivals": len(sim_input.fixed_arrivals or []),
            "simulation": sim,
            "actual": actual,
            "naive": naive,
            "errors": errors,
            "rule": BACKTEST_RULE,
            "model": sim_input.meta,
            "seconds": round(time.perf_counter() - t0, 3),
            "error_definition": "MAPE = mean over weeks with real completions of |simulated - real| / real (all "
                                "orders finished); lead time, WIP and the per-forecast errors are of the population "
                                "(active WIP at start + orders created in the window)",
        },
    )


BACKTEST_RULE = (
    "from a past start date, the baseline (FIFO, the stations, calendar and samples known then) is simulated from "
    "the active WIP with the orders really created afterwards; it is scored on the population (that WIP + those "
    "arrivals): weekly completions, lead time (created to finished; median and mean) of those finished in the "
    "window, and those unfinished at the end; beside two naive forecasts: repeat_trailing (the last "
    f"{NAIVE_TRAILING_WEEKS} weeks again) and arrivals_plus_median (every order finishes the trailing median lead "
    "time after its creation)"
)


def backtest_summary(backtests: list[WhatIfBacktest]) -> dict:
    """Mean absolute errors over several start dates, per forecast, and whether the simulation beats both naive
    forecasts on lead time (median and mean)."""
    forecasts = ("simulation", "repeat_trailing", "arrivals_plus_median")
    keys = ("lead_time_median_days", "lead_time_mean_days", "wip_at_end", "throughput_mape", "throughput_total_error")
    mean_errors = {}
    for f in forecasts:
        mean_errors[f] = {}
        for k in keys:
            values = [b.details["errors"][f][k] for b in backtests if b.details["errors"][f][k] is not None]
            mean_errors[f][k] = round(sum(values) / len(values), 4) if values else None

    def beats(key: str) -> bool:
        sim = mean_errors["simulation"][key]
        return sim is not None and all(mean_errors[f][key] is not None and sim < mean_errors[f][key]
                                       for f in forecasts[1:])

    return {
        "dates": [b.start.isoformat() for b in backtests],
        "mean_absolute_errors": mean_errors,
        "met": {
            "beats_naive_on_median_lead_time": beats("lead_time_median_days"),
            "beats_naive_on_mean_lead_time": beats("lead_time_mean_days"),
            "beats_naive_on_wip_at_end": beats("wip_at_end"),
            "beats_naive_on_weekly_throughput": beats("throughput_mape"),
        },
    }


def whatif_backtest_series(*, end: datetime, weeks: int = 8, dates: int = 6, step_weeks: int = 8,
                           replications: int = BACKTEST_REPLICATIONS) -> tuple[list[WhatIfBacktest], dict]:
    """Backtests at `dates` start dates, the last one `weeks` before `end`, `step_weeks` apart; and their summary."""
    last = end - timedelta(weeks=weeks)
    starts = [last - timedelta(weeks=step_weeks * k) for k in range(dates - 1, -1, -1)]
    backtests = [whatif_backtest_run(start=s, weeks=weeks, replications=replications) for s in starts]
    return backtests, backtest_summary(backtests)


def default_backtest_start(*, as_of: datetime, weeks: int = 8) -> datetime:
    return as_of - timedelta(weeks=weeks)
