"""Counterfactual benchmark of the what-if: does the simulator, given the data known at D, predict what a capacity change at D really did?

Two demo workbooks of one seed differ only in the gate phase's capacity from D (make_demo_workbook
--gate-capacity-factor F --gate-capacity-from D; before D they hold the same events, cell for cell). Each is
ingested into a scratch database (prodplan_bench_cf_usual, prodplan_bench_cf_changed). The what-if input is
gathered at as_of = D from each; the two must be equal (the selectors read nothing after D, else the changed
future would show). On the usual workbook's input the engine runs the baseline and the scenario "gate phase x F"
over the horizon D .. the workbooks' as-of, for several seeds. Predicted relative changes of lead time (median
and mean of the orders finishing in the horizon, from creation) and of throughput (orders finishing in the
horizon) are compared with the real changes between the two workbooks over the same window.

Usage: .venv/bin/python bench/whatif_counterfactual.py [--scale 0.05] [--seed 42] [--as-of 2025-07-15]
       [--from 2025-05-20] [--factor 2.0] [--replications 40] [--keep-databases] [--db-suffix _x]
Prints and saves bench/results/whatif_counterfactual.json. DATABASE_URL names the server (any database on it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")
PY = sys.executable
TOLERANCE = 0.35  # |predicted change - real change| / |real change|, issue 16 item 4
DATABASES = {"usual": "prodplan_bench_cf_usual", "changed": "prodplan_bench_cf_changed"}
TEMPLATE_DATABASE = "prodplan_bench_cf_template"  # migrated once, copied for each workbook
ARRIVAL_WEEKS = 8


def _lead_stats(lead_times: list[float]) -> dict:
    return {"orders": len(lead_times),
            "median_lead_time_days": round(statistics.median(lead_times), 3) if lead_times else None,
            "mean_lead_time_days": round(statistics.fmean(lead_times), 3) if lead_times else None}


# --- child: one database (DATABASE_URL set by the parent) --------------------------------------------------------

_GATE_WAITS_SQL = """
    SELECT extract(epoch FROM op.started_at - prev.ended_at)::float8 / 86400.0
    FROM orders_orderphase op
    CROSS JOIN LATERAL (SELECT max(p.ended_at) AS ended_at FROM orders_orderphase p
                        WHERE p.order_id = op.order_id AND p.sequence < op.sequence) prev
    WHERE op.phase_id = %(gate)s AND NOT op.is_rework AND op.started_at >= %(start)s AND op.started_at < %(end)s
      AND prev.ended_at IS NOT NULL AND prev.ended_at <= op.started_at
"""


def _gate_waits(gate_phase: int, start: datetime, end: datetime) -> dict:
    """The real wait before the gate (its start minus the order's previous phase end) of the gate passes started
    in [start, end): what the engine's queue at the gate should reproduce."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_GATE_WAITS_SQL, {"gate": gate_phase, "start": start, "end": end})
        waits = sorted(row[0] for row in cursor.fetchall())
    days = (end - start).total_seconds() / 86400
    return {"gate_starts": len(waits), "gate_starts_per_day": _r(len(waits) / days, 3),
            "mean_wait_days": _r(statistics.fmean(waits), 3) if waits else None,
            "median_wait_days": _r(statistics.median(waits), 3) if waits else None}


def child(workbook: str, as_of_text: str, horizon_days: int, out: str, with_real_arrivals: bool,
          gate_phase: int) -> None:
    """Ingest the workbook, gather the what-if input at as_of, measure the real window after it; pickle all."""
    import django

    django.setup()
    from django.core.management import call_command

    from orders.models import ManufacturingOrder
    from prodplan.asof import as_of_from
    from whatif.selectors import gather_sim_input

    started = time.perf_counter()
    call_command("ingest", workbook, "--no-profile", verbosity=0)
    ingest_seconds = time.perf_counter() - started
    as_of = as_of_from(as_of_text)
    end = as_of + timedelta(days=horizon_days)
    started = time.perf_counter()
    sim_input = gather_sim_input(as_of=as_of, arrival_weeks=ARRIVAL_WEEKS)
    real_arrivals_input = (gather_sim_input(as_of=as_of, arrival_weeks=ARRIVAL_WEEKS, real_arrivals_days=horizon_days)
                           if with_real_arrivals else None)
    gather_seconds = time.perf_counter() - started
    finished = list(ManufacturingOrder.objects.filter(finished_at__gte=as_of, finished_at__lt=end, created_at__isnull=False)
                    .values_list("created_at", "finished_at"))
    lead = sorted((f - c).total_seconds() / 86400 for c, f in finished)
    weekly = [0] * max(1, -(-horizon_days // 7))
    for _c, f in finished:
        weekly[min(int((f - as_of).total_seconds() // (7 * 86400)), len(weekly) - 1)] += 1
    gate = {"horizon": _gate_waits(gate_phase, as_of, end),
            f"{ARRIVAL_WEEKS}_weeks_before": _gate_waits(gate_phase, as_of - timedelta(weeks=ARRIVAL_WEEKS), as_of)}
    with open(out, "wb") as handle:
        pickle.dump({"sim_input": sim_input, "real_arrivals_input": real_arrivals_input,
                     "real": {**_lead_stats(lead), "weekly_completions": weekly, "gate": gate},
                     "seconds": {"ingest": round(ingest_seconds, 2), "gather": round(gather_seconds, 2)}}, handle)


# --- parent ------------------------------------------------------------------------------------------------------

def _admin_url(base_url: str) -> str:
    return urlparse(base_url)._replace(path="/postgres").geturl()


def _database_url(base_url: str, name: str) -> str:
    return urlparse(base_url)._replace(path=f"/{name}").geturl()


def create_database(base_url: str, name: str, *, template: str | None = None) -> str:
    """DROP/CREATE a scratch database (prodplan_bench_ prefix) on DATABASE_URL's server; migrated unless it is a
    copy of an already migrated template. Returns its URL."""
    import psycopg

    assert name.startswith("prodplan_bench_"), name
    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    url = _database_url(base_url, name)
    if template is None:
        env = _child_env(url)
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PY, "manage.py", "pgpartition", "--yes", "-v", "0"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    return url


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    assert name.startswith("prodplan_bench_"), name
    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _child_env(url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("REDIS_URL", None)  # an in-process cache: nothing shared with other databases' runs
    return env


def _differences(first, second) -> list[str]:
    """The SimInput fields (and meta keys, as meta.<key>) whose values differ between two inputs."""
    a, b = dataclasses.asdict(first), dataclasses.asdict(second)
    meta_a, meta_b = a.pop("meta", {}) or {}, b.pop("meta", {}) or {}
    fields = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
    fields += [f"meta.{k}" for k in set(meta_a) | set(meta_b) if meta_a.get(k) != meta_b.get(k)]
    return sorted(fields)


def _relative(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return (new - old) / old


def _error(predicted: float | None, real: float | None) -> float | None:
    if predicted is None or real is None or real == 0:
        return None
    return abs(predicted - real) / abs(real)


def _tree_state() -> dict:
    """The commit the run stood on and whether the what-if code differed from it (uncommitted edits)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None,
            "whatif_uncommitted_changes": bool(git("status", "--porcelain", "--", "whatif"))}


def _shown_path(path: str) -> str:
    return str(Path(path).relative_to(ROOT)) if Path(path).is_relative_to(ROOT) else path


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def predict(sim_input, gate_phase: int, factor: float, horizon_days: int, replications: int) -> dict:
    """Baseline and 'gate x factor' over the horizon for seeds 0..n-1, lead times pooled over the seeds."""
    from whatif import engine

    scenario_overrides = ((gate_phase, "multiplier", factor),)
    pooled = {"baseline": [], "scenario": []}
    finished = {"baseline": [], "scenario": []}
    servers = {}
    gate = {"baseline": {"utilisation": [], "wait": []}, "scenario": {"utilisation": [], "wait": []}}
    bottleneck: dict[str, Counter] = {"baseline": Counter(), "scenario": Counter()}
    for seed in range(replications):
        for name, overrides in (("baseline", ()), ("scenario", scenario_overrides)):
            scenario = engine.Scenario(horizon_days=horizon_days, arrivals=True, seed=seed,
                                       capacity_overrides=overrides)
            run = engine.run_once(sim_input, scenario)
            kpis = run["kpis"]
            pooled[name] += run["lead_times_finished"]
            finished[name].append(kpis["orders_finished"])
            servers[name] = kpis["servers"].get(str(gate_phase))
            for key, source in (("utilisation", "utilisation"), ("wait", "mean_queue_wait_days")):
                value = (kpis.get(source) or {}).get(str(gate_phase))
                if value is not None:
                    gate[name][key].append(value)
            bottleneck[name][kpis.get("bottleneck_phase_id")] += 1
    out = {}
    for name in pooled:
        out[name] = {**_lead_stats(pooled[name]),
                     "orders_finished_per_run": round(statistics.fmean(finished[name]), 3),
                     "gate_servers": servers[name],
                     "gate_utilisation": _r(statistics.fmean(gate[name]["utilisation"]), 3)
                     if gate[name]["utilisation"] else None,
                     "gate_mean_queue_wait_days": _r(statistics.fmean(gate[name]["wait"]), 3)
                     if gate[name]["wait"] else None,
                     "bottleneck_phase_id": bottleneck[name].most_common(1)[0][0]}
        out[name]["orders"] = len(pooled[name])
    return out


def compare(predicted: dict, real: dict) -> dict:
    """Relative changes (scenario vs baseline; changed vs usual workbook) and the error of each prediction."""
    pairs = {
        "median_lead_time": ("median_lead_time_days", "median_lead_time_days"),
        "mean_lead_time": ("mean_lead_time_days", "mean_lead_time_days"),
        "throughput": ("orders_finished_per_run", "orders"),
    }
    out = {}
    for name, (pkey, rkey) in pairs.items():
        p = _relative(predicted["scenario"][pkey], predicted["baseline"][pkey])
        r = _relative(real["changed"][rkey], real["usual"][rkey])
        err = _error(p, r)
        out[name] = {"predicted_change": _r(p), "real_change": _r(r), "relative_error": _r(err),
                     "within_35pct": err is not None and err <= TOLERANCE}
    return out


def run_pair(args, seed: int, base_url: str, workdir: Path, horizon_days: int, what_if_as_of: str) -> dict:
    """Both workbooks of one generator seed: generate, ingest, gather at D, predict, compare."""
    from ingestion.demo import generate_demo_workbook

    workbooks, manifests, gathered = {}, {}, {}
    for name, factor in (("usual", 1.0), ("changed", args.factor)):
        path = workdir / f"cf_{seed}_{name}.xlsx"
        manifests[name] = generate_demo_workbook(path, scale=args.scale, seed=seed, as_of=args.as_of,
                                                 gate_capacity_factor=factor, gate_capacity_from=args.change_from)
        workbooks[name] = str(path)
    for name, database in DATABASES.items():
        database += args.db_suffix
        url = create_database(base_url, database, template=TEMPLATE_DATABASE + args.db_suffix)
        out = workdir / f"cf_{seed}_{name}.pickle"
        result = subprocess.run(
            [PY, __file__, "--child", workbooks[name], what_if_as_of, str(horizon_days), str(out),
             "1" if name == "usual" else "0", str(manifests[name]["gate_capacity"]["phase_id"])],
            cwd=ROOT, env=_child_env(url), capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"child for seed {seed} {name} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        with open(out, "rb") as handle:
            gathered[name] = pickle.load(handle)  # noqa: S301 - our own child's file
        if not args.keep_databases:
            drop_database(base_url, database)

    usual_input, changed_input = gathered["usual"]["sim_input"], gathered["changed"]["sim_input"]
    differing = _differences(usual_input, changed_input)
    gate = manifests["changed"]["gate_capacity"]
    predicted = predict(usual_input, gate["phase_id"], args.factor, horizon_days, args.replications)
    real = {name: gathered[name]["real"] for name in gathered}
    with_real_arrivals = None
    if gathered["usual"]["real_arrivals_input"] is not None:
        predicted_ra = predict(gathered["usual"]["real_arrivals_input"], gate["phase_id"], args.factor, horizon_days,
                               args.replications)
        with_real_arrivals = {"predicted": predicted_ra, "deltas": compare(predicted_ra, real)}
    return {
        "seed": seed,
        "workbooks": {name: {"path": _shown_path(workbooks[name]), "args": manifests[name]["args"],
                             "gate_capacity": manifests[name]["gate_capacity"]} for name in workbooks},
        "what_if_input": {
            "as_of": what_if_as_of,
            "wip_orders": len(usual_input.orders),
            "gate_phase_id": gate["phase_id"],
            "gate_servers_estimated": usual_input.capacity.get(gate["phase_id"]),
            "gate_capacity_estimate": (usual_input.meta.get("capacity") or {}).get(str(gate["phase_id"])),
            "gate_touch_time_median_days": _r(statistics.median(usual_input.durations_phase[gate["phase_id"]]), 3)
            if usual_input.durations_phase.get(gate["phase_id"]) else None,
            "gate_has_own_calendar": gate["phase_id"] in (usual_input.calendars or {}),
            "arrival_rate_per_day": _r(usual_input.arrival_rate_per_day),
            "equal_from_both_workbooks": not differing,
            "fields_that_differ": differing,
        },
        "predicted": predicted,
        "real": real,
        "deltas": compare(predicted, real),
        "with_real_arrivals": with_real_arrivals,
        "seconds": {name: gathered[name]["seconds"] for name in gathered},
    }


def across_seeds(deltas_per_pair: list[dict]) -> dict:
    """Mean predicted change against mean real change over the seeds (each pair is one noisy draw of the effect)."""
    out = {}
    for metric in ("median_lead_time", "mean_lead_time", "throughput"):
        rows = [d[metric] for d in deltas_per_pair]
        predicted = [r["predicted_change"] for r in rows if r["predicted_change"] is not None]
        real = [r["real_change"] for r in rows if r["real_change"] is not None]
        mean_p = statistics.fmean(predicted) if predicted else None
        mean_r = statistics.fmean(real) if real else None
        err = _error(mean_p, mean_r)
        out[metric] = {"predicted_change": _r(mean_p), "real_change": _r(mean_r), "relative_error": _r(err),
                       "within_35pct": err is not None and err <= TOLERANCE,
                       "pairs_within_35pct": sum(1 for r in rows if r["within_35pct"]), "pairs": len(rows)}
    return out


def _lead_met(deltas: dict) -> bool:
    return bool(deltas["median_lead_time"]["within_35pct"] and deltas["mean_lead_time"]["within_35pct"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=6,
                        metavar=("WORKBOOK", "AS_OF", "HORIZON_DAYS", "OUT", "REAL_ARRIVALS", "GATE_PHASE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seeds", default="42,7,11",
                        help="Generator seeds, comma-separated; the first is the headline pair (42: the demo's)")
    parser.add_argument("--as-of", dest="as_of", default="2025-07-15", help="The workbooks' as-of date (end of day)")
    parser.add_argument("--from", dest="change_from", default="2025-05-20",
                        help="D: the first day of the changed gate capacity; the what-if runs at D 00:00")
    parser.add_argument("--factor", type=float, default=2.0, help="Gate capacity factor of the second workbook")
    parser.add_argument("--replications", type=int, default=40, help="Engine seeds per scenario")
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench_counterfactual"))
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--db-suffix", default="",
                        help="Appended to the scratch databases' names (runs side by side on one server)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "whatif_counterfactual.json"))
    args = parser.parse_args()
    if args.child:
        workbook, as_of_text, horizon, out, real_arrivals, gate_phase = args.child
        child(workbook, as_of_text, int(horizon), out, real_arrivals == "1", int(gate_phase))
        return

    import django

    django.setup()
    began = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    base_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    change_day = datetime.fromisoformat(args.change_from).date()
    horizon_days = (datetime.fromisoformat(args.as_of).date() - change_day).days + 1  # D 00:00 .. the as-of's end
    horizon_days = horizon_days // 7 * 7  # whole weeks, inside what both workbooks have seen
    what_if_as_of = f"{change_day.isoformat()}T00:00:00"

    create_database(base_url, TEMPLATE_DATABASE + args.db_suffix)
    try:
        pairs = [run_pair(args, seed, base_url, workdir, horizon_days, what_if_as_of) for seed in seeds]
    finally:
        drop_database(base_url, TEMPLATE_DATABASE + args.db_suffix)
    headline = pairs[0]
    overall = across_seeds([p["deltas"] for p in pairs])
    overall_real_arrivals = (across_seeds([p["with_real_arrivals"]["deltas"] for p in pairs])
                             if all(p["with_real_arrivals"] for p in pairs) else None)
    gate = headline["workbooks"]["changed"]["gate_capacity"]
    no_lookahead = all(p["what_if_input"]["equal_from_both_workbooks"] for p in pairs)
    report = {
        "benchmark": "whatif_counterfactual",
        "command": " ".join([".venv/bin/python", "bench/whatif_counterfactual.py", *sys.argv[1:]]),
        "workbooks": headline["workbooks"],
        "D": what_if_as_of,
        "horizon": {"days": horizon_days, "from": what_if_as_of,
                    "to": (datetime.fromisoformat(what_if_as_of) + timedelta(days=horizon_days)).isoformat()},
        "scenario": f"gate phase {gate['phase_id']} ({gate['phase']}) capacity x{args.factor} from D "
                    "(engine: a capacity_overrides multiplier of the servers it estimates), FIFO, arrivals drawn from "
                    f"the {ARRIVAL_WEEKS} weeks before D; baseline: the same without the override",
        "scale": args.scale,
        "replications": args.replications,
        "what_if_input": {**headline["what_if_input"],
                          "check": "gather_sim_input(as_of=D) on each workbook's database: the workbooks differ "
                                   "only after D, so any difference means a selector read something after D"},
        "predicted": headline["predicted"],
        "real": headline["real"],
        "deltas": headline["deltas"],
        "across_seeds": overall,
        "across_seeds_with_real_arrivals": overall_real_arrivals,
        "pairs": pairs,
        "met": {
            "lead_time_change_within_35pct": _lead_met(headline["deltas"]) and _lead_met(overall),
            "throughput_change_within_35pct": bool(headline["deltas"]["throughput"]["within_35pct"]
                                                   and overall["throughput"]["within_35pct"]),
            "no_lookahead": no_lookahead,
        },
        "definitions": {
            "lead_time": "finish - creation of the orders finishing in the horizon (WIP at D and new orders)",
            "throughput": "orders finishing in the horizon (simulated: mean over the engine's seeds)",
            "change": "(scenario - baseline) / baseline; real: (changed workbook - usual workbook) / usual workbook",
            "relative_error": "|predicted change - real change| / |real change|",
            "met": "the headline pair (first seed) AND the mean over the seeds' pairs within 35%; lead time: both "
                   "the median and the mean",
            "with_real_arrivals": "the same prediction fed the orders really created after D (hindsight, identical "
                                  "in both workbooks): separates the arrival model's error from the capacity model's",
        },
        "seconds": round(time.perf_counter() - began, 1),
        "engine_note": "whatif/engine.py and whatif/selectors.py were being rewritten (issue 16 item 3) while this "
                       "benchmark was written; the figures are those of the engine in the tree at the time of the run",
        "tree": _tree_state(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("D", "horizon", "what_if_input", "deltas", "across_seeds", "met")},
                     indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
