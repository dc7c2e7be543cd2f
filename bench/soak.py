"""Soak: mixed API load at 16 concurrent clients against gunicorn for 10 minutes, with an ingestion of a changed workbook in the middle.

Usage: DATABASE_URL=... [REDIS_URL=...] .venv/bin/python bench/soak.py [--duration 600] [--clients 16] [--workers 4]
       [--ingest-at 0.4 (fraction of the run)] [--workbook var/bench/Folha_IA_demo_1.0.xlsx]
Needs a database loaded with the workbook. Makes (once) a copy with 1% of order-phase end times moved
(bench/ingest.py's changed_copy) and, at --ingest-at, runs `manage.py ingest` on whichever of the two
files the database did not load last, so every soak ingests a real change while it serves. The
clients take the endpoints of bench/api_load.py round-robin with the cache on (the deployed setting).
With REDIS_URL (as deployed) a Celery worker runs beside gunicorn, so the ingestion's post-commit cache
warm-ups run where they would in production.
Writes bench/results/soak.json: errors (goal zero), p95 per endpoint against the API goals (whole run,
and before / during / after the ingestion), a per-minute timeline, and the RSS of each gunicorn worker
sampled every --sample-every s (flat = the workers' total grows at most 10% from the first to the
last minute); "met" {goal: bool} for the release gate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_load import (  # noqa: E402 - bench/ is not a package
    APP_NAME,
    GOALS_MS,
    RESULTS,
    ROOT,
    Recorder,
    ServerSampler,
    client_loop,
    endpoints,
    loadavg,
    pct,
    post_ingestion_warm_up,
    run_load,
    sample_ids,
    start_gunicorn,
    stop_gunicorn,
    use_bench_api_key,
    wait_ready,
)
from ingest import changed_copy  # noqa: E402

RSS_GROWTH_LIMIT = 0.10  # "flat": the workers' total RSS grows at most this much from the first to the last minute
CHANGED_FRACTION = 0.01


def sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def workbook_to_ingest(original: Path, changed: Path) -> Path:
    """The file that differs from the database's last successful ingestion (making the changed copy if missing)."""
    from ingestion.choices import RunStatus
    from ingestion.models import IngestionRun

    if not changed.exists():
        started = time.perf_counter()
        rows = changed_copy(original, changed, CHANGED_FRACTION)
        print(f"made {changed.name}: {rows} order-phase end times moved in {time.perf_counter() - started:.0f} s", flush=True)
    last = IngestionRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").values_list("file_sha256", flat=True).first()
    return original if last == sha256(changed) else changed


def ingest_in_background(path: Path, log: Path, outcome: dict) -> threading.Thread:
    """manage.py ingest PATH in a child process (its own database URL, not the server's application name)."""

    def target() -> None:
        outcome["started"] = time.monotonic()
        with log.open("w") as handle:
            result = subprocess.run([sys.executable, "manage.py", "ingest", str(path)], cwd=ROOT, env=os.environ.copy(),
                                    stdout=handle, stderr=subprocess.STDOUT)
        outcome["ended"] = time.monotonic()
        outcome["returncode"] = result.returncode

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def start_celery_worker(log: Path) -> subprocess.Popen | None:
    """With Redis, a Celery worker (solo pool) as deployed: it runs the ingestion's post-commit cache warm-ups."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "prodplan", "worker", "--loglevel=WARNING", "--pool=solo", "-n", "soak@%h"],
        cwd=ROOT, env=os.environ.copy(), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def rss_summary(samples: list[tuple[float, dict[int, int]]], start: float, end: float) -> dict:
    """Workers' total RSS per sample; growth from the first minute's median to the last minute's median."""
    rows = [(t - start, sum(rss.values()) / 2**20, {str(pid): round(b / 2**20, 1) for pid, b in rss.items()})
            for t, rss in samples if start <= t <= end and rss]
    if not rows:
        return {"samples": []}
    first = [mb for t, mb, _ in rows if t < 60] or [rows[0][1]]
    last = [mb for t, mb, _ in rows if t >= rows[-1][0] - 60]
    first_mb, last_mb = statistics.median(first), statistics.median(last)
    growth = (last_mb - first_mb) / first_mb if first_mb else None
    return {
        "workers": len(rows[-1][2]), "first_minute_total_mb": round(first_mb, 1), "last_minute_total_mb": round(last_mb, 1),
        "max_total_mb": round(max(mb for _, mb, _ in rows), 1), "growth_pct": round(growth * 100, 2) if growth is not None else None,
        "flat": growth is not None and growth <= RSS_GROWTH_LIMIT,
        "worker_pids_changed": len({pid for *_, per in rows for pid in per}) != len(rows[-1][2]),
        "samples": [{"t_s": round(t, 1), "total_mb": round(mb, 1), "per_worker_mb": per} for t, mb, per in rows],
    }


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="measured seconds (default 600)")
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--ingest-at", type=float, default=0.4, help="start the ingestion at this fraction of the run")
    parser.add_argument("--workbook", default=str(ROOT / "var" / "bench" / "Folha_IA_demo_1.0.xlsx"))
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--out", default=str(RESULTS / "soak.json"))
    args = parser.parse_args()

    django.setup()
    use_bench_api_key()
    original = Path(args.workbook)
    to_ingest = workbook_to_ingest(original, original.with_name(original.stem + "_soak.xlsx"))
    eps = endpoints(*sample_ids())
    names = list(eps)
    server = start_gunicorn(port=args.port, workers=args.workers, cache=True)
    worker = start_celery_worker(ROOT / "var" / "bench" / "soak_worker.log")
    sampler = ServerSampler(server.pid, APP_NAME, interval=args.sample_every)
    recorder = Recorder()
    ingestion: dict = {"file": to_ingest.name}
    log = ROOT / "var" / "bench" / "soak_ingest.log"
    try:
        wait_ready(f"http://127.0.0.1:{args.port}")
        post_ingestion_warm_up()
        run_load(f"http://127.0.0.1:{args.port}", eps, args.clients, args.warmup)
        load_before = loadavg()
        sampler.start()
        sampler.mark()
        start = time.monotonic()
        stop = start + args.duration
        clients = [threading.Thread(target=client_loop, args=(f"http://127.0.0.1:{args.port}", eps, stop, k, recorder))
                   for k in range(args.clients)]
        for thread in clients:
            thread.start()
        load_samples = []
        ingest_thread = None
        next_print = start + 60
        while time.monotonic() < stop:
            time.sleep(1)
            now = time.monotonic()
            if ingest_thread is None and now >= start + args.duration * args.ingest_at:
                ingestion["loadavg_at_start"] = loadavg()
                ingest_thread = ingest_in_background(to_ingest, log, ingestion)
            if now >= next_print:
                load_samples.append((round(now - start), loadavg()))
                minute = recorder.report(names, since=now - 60)
                p95 = pct([s[2] for s in recorder.samples if s[0] >= now - 60 and s[3] == "ok"], 0.95)
                print(f"{now - start:5.0f}s  requests {sum(r['requests'] for r in minute.values()):5}  errors "
                      f"{sum(r['errors'] for r in minute.values())}  p95 all {p95} ms  load {load_samples[-1][1]}  "
                      f"workers RSS {sum(sampler.rss[-1][1].values()) / 2**20 if sampler.rss else 0:.0f} MB"
                      + ("  (ingesting)" if ingest_thread is not None and "ended" not in ingestion else ""), flush=True)
                next_print += 60
        for thread in clients:
            thread.join()
        end = time.monotonic()
        if ingest_thread is not None:
            ingest_thread.join(timeout=900)
        load_after = loadavg()
    finally:
        sampler.stop()
        stop_gunicorn(server)
        if worker is not None:
            stop_gunicorn(worker)  # same thing: SIGTERM to its process group, then wait

    ing_start = ingestion.get("started", end)
    ing_end = ingestion.get("ended", end)
    # "during" runs until the workers' caches have refilled: the cached data version lives 5 s, then one recompute.
    phases = {"before_ingestion": (start, ing_start), "during_ingestion": (ing_start, min(ing_end + 15, end)),
              "after_ingestion": (min(ing_end + 15, end), end)}
    whole = recorder.report(names, since=start, until=end)
    by_phase = {}
    for phase, (since, until) in phases.items():
        rows = recorder.report(names, since=since, until=until)
        by_phase[phase] = {"seconds": round(until - since, 1),
                           "errors": sum(r["errors"] for r in rows.values()),
                           "p95_ms": {n: rows[n]["p95_ms"] for n in names}}
    timeline = []
    for minute in range(int((end - start) // 60) + (1 if (end - start) % 60 else 0)):
        since = start + 60 * minute
        ok = [s[2] for s in recorder.samples if since <= s[0] < since + 60 and s[3] == "ok"]
        bad = sum(1 for s in recorder.samples if since <= s[0] < since + 60 and s[3] != "ok")
        timeline.append({"minute": minute, "requests": len(ok) + bad, "errors": bad, "p95_ms_all": pct(ok, 0.95),
                         "loadavg": next((la for t, la in load_samples if t >= 60 * (minute + 1)), None)})
    rss = rss_summary(sampler.rss, start, end)
    total = sum(r["requests"] for r in whole.values())
    errors = sum(r["errors"] for r in whole.values())
    # The server is stopped by now: its CPU is read from the last samples.
    server_cpu = sum(cpu - sampler.cpu_mark.get(pid, 0.0) for pid, cpu in sampler.cpu_last.items())
    met = {f"{name}_p95_ms": whole[name]["p95_ms"] is not None and whole[name]["p95_ms"] <= goal for name, goal in GOALS_MS.items()}
    met["zero_errors"] = errors == 0
    met["ingestion_succeeded"] = ingestion.get("returncode") == 0
    met["worker_rss_flat"] = bool(rss.get("flat"))
    ingestion_summary = {
        "file": ingestion["file"], "returncode": ingestion.get("returncode"),
        "started_at_s": round(ing_start - start, 1), "seconds": round(ing_end - ing_start, 1),
        "loadavg_at_start": ingestion.get("loadavg_at_start"),
        "log_tail": log.read_text()[-1500:] if log.exists() else "",
    }
    result = {
        "benchmark": "soak", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(end - start, 1), "warmup_s": args.warmup, "clients": args.clients, "workers": args.workers,
        "cache": "on", "machine": platform.platform(), "cpus": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "requests": total, "requests_per_second": round(total / (end - start), 1), "errors": errors,
        "server_cpu_ms_per_request": round(server_cpu / total * 1000, 2) if total else None,
        "goals_p95_ms": GOALS_MS, "ingestion": ingestion_summary, "endpoints": whole, "by_phase": by_phase,
        "timeline_per_minute": timeline, "worker_rss": rss, "rss_growth_limit_pct": RSS_GROWTH_LIMIT * 100, "met": met,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak {result['duration_s']} s: {total} requests ({result['requests_per_second']}/s), {errors} errors, "
          f"load average {load_before} -> {load_after}")
    print(f"ingestion of {ingestion_summary['file']}: exit {ingestion_summary['returncode']}, "
          f"{ingestion_summary['seconds']} s from t={ingestion_summary['started_at_s']} s")
    print(f"{'endpoint':20} {'req':>6} {'err':>4} {'p50':>8} {'p95':>8} {'p99':>8} goal   p95 before/during/after")
    for name, row in whole.items():
        split = "/".join(str(by_phase[p]["p95_ms"][name]) for p in phases)
        print(f"{name:20} {row['requests']:6} {row['errors']:4} {row['p50_ms'] or 0:8.1f} {row['p95_ms'] or 0:8.1f} "
              f"{row['p99_ms'] or 0:8.1f} {row['goal_p95_ms'] or '':4}   {split}")
    print(f"workers RSS: first minute {rss.get('first_minute_total_mb')} MB, last minute {rss.get('last_minute_total_mb')} MB, "
          f"max {rss.get('max_total_mb')} MB, growth {rss.get('growth_pct')}% (flat: {rss.get('flat')})")
    print("met:", json.dumps(met))


if __name__ == "__main__":
    main()
