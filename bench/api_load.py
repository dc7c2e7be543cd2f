"""Benchmark: the PRODPLAN/KPI API under load (gunicorn, 16 concurrent keep-alive clients, 60 s).

Usage: DATABASE_URL=... .venv/bin/python bench/api_load.py [--duration 60] [--clients 16] [--workers 4]
       [--cache on|off] [--url http://host:port (use a running server instead of starting gunicorn)]
Starts gunicorn on the current database (the throttle is lifted for the run), warms up, then every
client picks endpoints round-robin for --duration seconds. Prints and saves
bench/results/api_load_<cache>.json: requests, errors, p50/p95/p99 (ms) per endpoint.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")
GOALS_MS = {"orders": 40, "order_detail": 25, "schedule_current": 25, "kpis_overview": 30}


def endpoints(order_ids: list[int], product_ids: list[int]) -> dict[str, callable]:
    return {
        "orders": lambda rng: "/api/prodplan/orders",
        "orders_late": lambda rng: "/api/prodplan/orders?status=LATE",
        "order_detail": lambda rng: f"/api/prodplan/orders/{rng.choice(order_ids)}",
        "order_phases": lambda rng: f"/api/prodplan/orders/{rng.choice(order_ids)}/phases",
        "route": lambda rng: f"/api/prodplan/routes/{rng.choice(product_ids)}",
        "schedule_current": lambda rng: "/api/prodplan/schedule/current",
        "bottlenecks": lambda rng: "/api/prodplan/bottlenecks",
        "risk_queue": lambda rng: "/api/prodplan/risk_queue",
        "kpis_overview": lambda rng: "/api/kpis/overview",
        "kpis_by_phase": lambda rng: "/api/kpis/by-phase",
        "kpis_by_product": lambda rng: "/api/kpis/by-product",
    }


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return round(data[low] + (data[high] - data[low]) * (pos - low), 2)


def client_loop(base: str, eps: dict, stop: float, seed: int, samples: dict, errors: dict, lock: threading.Lock) -> None:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    rng = random.Random(seed)
    names = list(eps)
    i = seed
    while time.monotonic() < stop:
        name = names[i % len(names)]
        i += 1
        path = eps[name](rng)
        started = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            if ok:
                samples.setdefault(name, []).append(elapsed)
            else:
                errors[name] = errors.get(name, 0) + 1


def run_load(base: str, eps: dict, clients: int, duration: float) -> dict:
    samples: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + duration
    threads = [threading.Thread(target=client_loop, args=(base, eps, stop, k, samples, errors, lock)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = {}
    for name in eps:
        values = samples.get(name, [])
        report[name] = {"requests": len(values), "errors": errors.get(name, 0), "p50_ms": pct(values, 0.5),
                        "p95_ms": pct(values, 0.95), "p99_ms": pct(values, 0.99), "goal_p95_ms": GOALS_MS.get(name)}
    return report


def wait_ready(base: str, timeout: float = 60) -> None:
    parts = urlsplit(base)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", "/api/prodplan/schedule/current")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("server did not become ready")


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cache", choices=["on", "off"], default="on")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--url")
    parser.add_argument("--out")
    args = parser.parse_args()

    django.setup()
    from orders.models import ManufacturingOrder, Product

    order_ids = list(ManufacturingOrder.objects.order_by("?").values_list("id", flat=True)[:2000])
    product_ids = list(Product.objects.values_list("id", flat=True)[:500])
    if not order_ids:
        raise SystemExit("empty database: ingest a workbook first")
    eps = endpoints(order_ids, product_ids)

    server = None
    base = args.url
    if base is None:
        base = f"http://127.0.0.1:{args.port}"
        env = {**os.environ, "PRODPLAN_CACHE": "1" if args.cache == "on" else "0",
               "THROTTLE_ANON": "10000000/min", "THROTTLE_API_KEY": "10000000/min", "DJANGO_DEBUG": "0"}
        server = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "prodplan.wsgi:application", "-b", f"127.0.0.1:{args.port}",
             "-w", str(args.workers), "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_ready(base)
        run_load(base, eps, args.clients, args.warmup)
        report = run_load(base, eps, args.clients, args.duration)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    result = {"cache": args.cache, "clients": args.clients, "workers": args.workers, "duration_s": args.duration,
              "orders_in_db": ManufacturingOrder.objects.count(), "machine": platform.platform(),
              "cpus": os.cpu_count(), "endpoints": report}
    out = Path(args.out or ROOT / "bench" / "results" / f"api_load_{args.cache}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'endpoint':20} {'req':>6} {'err':>4} {'p50':>8} {'p95':>8} {'p99':>8} goal")
    for name, row in report.items():
        print(f"{name:20} {row['requests']:6} {row['errors']:4} {row['p50_ms'] or 0:8.1f} {row['p95_ms'] or 0:8.1f} "
              f"{row['p99_ms'] or 0:8.1f} {row['goal_p95_ms'] or ''}")


if __name__ == "__main__":
    main()
