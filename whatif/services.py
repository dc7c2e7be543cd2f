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
from prodplan.task_queue import enqueue_run
from whatif import engine
from whatif.choices import RunStatus
from whatif.models import WhatIfBacktest, WhatIfRun
from whatif.selectors import cached_sim_input, gather_sim_input, weekly_completions

logger = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 56
DEFAULT_ARRIVAL_WEEKS = 8
ASYNC_HORIZON_DAYS = 182  # longer horizons run as a Celery task (202 + id)
BACKTEST_REPLICATIONS = 5


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
    if not created and run.status != RunStatus.FAILED:
        WHATIF_RUNS.labels(outcome="reused").inc()
        return run, False
    if run_async or inputs["horizon_days"] > ASYNC_HORIZON_DAYS:
        from whatif.tasks import whatif_run_task

        WhatIfRun.objects.filter(pk=run.pk).update(status=RunStatus.PENDING, error="")
        # A broker outage fails the run (an identical request then computes it again) and answers 503.
        transaction.on_commit(lambda: enqueue_run(whatif_run_task, runs=WhatIfRun.objects, run_id=run.pk))
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
    if meta.get("risk_basis") == "order_age_fallback":
        notes.append("RISK_FIRST: the risk queue's scores are not available; orders are ranked by age instead.")
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


@transaction.atomic
def whatif_backtest_run(*, start: datetime, weeks: int = 8, replications: int = BACKTEST_REPLICATIONS) -> WhatIfBacktest:
    """Simulate the baseline from the WIP at start with the real arrivals that followed; compare weekly completions.

    The simulated figure is the mean over `replications` seeds (0..n-1), so the error measures the
    model, not one draw."""
    t0 = time.perf_counter()
    horizon = weeks * 7
    sim_input = gather_sim_input(as_of=start, real_arrivals_days=horizon)
    runs = [engine.run_once(sim_input, engine.Scenario(horizon_days=horizon, arrivals=True, seed=s))
            for s in range(replications)]
    simulated = [sum(r["kpis"]["throughput_per_week"][w] for r in runs) / replications for w in range(weeks)]
    actual = weekly_completions(start=start, weeks=weeks)
    mape = _mape(simulated, actual)
    total_error = (sum(simulated) - sum(actual)) / sum(actual) if sum(actual) else None
    return WhatIfBacktest.objects.create(
        start=start, weeks=weeks, data_version=data_version(),
        simulated_weekly=[round(x, 3) for x in simulated], actual_weekly=actual,
        mape=None if mape is None else round(mape, 4),
        total_error=None if total_error is None else round(total_error, 4),
        details={
            "replications": replications,
            "wip_orders": len(sim_input.orders),
            "real_arrivals": len(sim_input.fixed_arrivals or []),
            "model": sim_input.meta,
            "seconds": round(time.perf_counter() - t0, 3),
            "error_definition": "MAPE = mean over weeks with real completions of |simulated - real| / real",
        },
    )


def default_backtest_start(*, as_of: datetime, weeks: int = 8) -> datetime:
    return as_of - timedelta(weeks=weeks)
