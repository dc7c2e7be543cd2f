"""Benchmark: one what-if scenario over the WIP of a (full-scale) database, 8 weeks, with arrivals.

Usage: DATABASE_URL=... .venv/bin/python bench/whatif.py [--as-of DATE] [--horizon-days 56] [--backend heap|simpy]
       [--scale-up K --out bench/results/whatif_scaled.json]
Prints and saves bench/results/whatif.json: gather time, simulation wall time (baseline + scenario),
step events (a service start and a service end per step) per second. --scale-up K replicates the WIP K times
and multiplies the arrival rate and the stations by K (a full-scale load from a small database).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")


def main() -> None:
    import django

    django.setup()
    from prodplan.asof import data_as_of, parse_as_of
    from whatif import engine
    from whatif.selectors import gather_sim_input

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of")
    parser.add_argument("--horizon-days", type=int, default=56)
    parser.add_argument("--backend", choices=sorted(engine.BACKENDS), default="heap")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale-up", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "whatif.json"))
    args = parser.parse_args()

    as_of = parse_as_of(args.as_of) or data_as_of()
    if as_of is None:
        sys.exit("No data as-of: ingest a workbook first or pass --as-of.")
    t0 = time.perf_counter()
    sim_input = gather_sim_input(as_of=as_of, arrival_weeks=8, with_risk=False)
    t1 = time.perf_counter()
    if args.scale_up > 1:
        import dataclasses

        k = args.scale_up
        sim_input = dataclasses.replace(
            sim_input, orders=[dataclasses.replace(o, key=f"{o.key}:{i}") for o in sim_input.orders for i in range(k)],
            arrival_rate_per_day=sim_input.arrival_rate_per_day * k,
            capacity={p: n * k for p, n in sim_input.capacity.items()})
        t1 = time.perf_counter()
    # a typical scenario: the phase with most servers x1.5, K2 durations +20%, shortest jobs first
    busiest = max(sim_input.capacity, key=lambda p: (sim_input.capacity[p], -p)) if sim_input.capacity else None
    scenario = engine.Scenario(
        priority_rule="SPT", horizon_days=args.horizon_days, arrivals=True, seed=args.seed,
        capacity_overrides=((busiest, "multiplier", 1.5),) if busiest is not None else (),
        coef_overrides=((None, "K2", None, 1.2),),
    )
    result = engine.simulate(sim_input, scenario, backend=args.backend)
    t2 = time.perf_counter()
    steps = result["steps"]
    report = {
        "benchmark": "whatif",
        "as_of": as_of.isoformat(),
        "backend": args.backend,
        "horizon_days": args.horizon_days,
        "scenario": f"SPT, phase {busiest} servers x1.5, K2 durations x1.2, arrivals on (plus the FIFO baseline)",
        "scale_up": args.scale_up,
        "wip_orders": len(sim_input.orders),
        "arrivals_simulated": result["scenario"]["orders_in"]["arrivals"],
        "phases": len(result["scenario"]["servers"]),
        "gather_seconds": round(t1 - t0, 3),
        "simulate_seconds": round(t2 - t1, 3),
        "runs": 2,
        "steps": steps,
        "events": steps * 2,
        "events_per_second": round(steps * 2 / (t2 - t1)) if t2 > t1 else None,
        "goal_seconds": 2.0,
        "meets_goal": (t2 - t1) <= 2.0,
        "baseline_finished": result["baseline"]["orders_finished"],
        "scenario_finished": result["scenario"]["orders_finished"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
