"""Benchmark: the PRODPLAN/KPI, quality and inventory APIs under load (gunicorn, 16 concurrent clients with no think time, 60 s).

Usage: DATABASE_URL=... [REDIS_URL=... (the deployed setup)] .venv/bin/python bench/api_load.py [--duration 60] [--clients 16] [--workers 4]
       [--cache both|on|off] [--url http://host:port (use a running server instead of starting gunicorn)]
Starts gunicorn on the current database (the throttle is lifted for the run), runs the post-ingestion
cache warm-up tasks when the cache is Redis, warms up with load, then every
client picks endpoints round-robin for --duration seconds; with --cache both (the default) it does
that with the versioned cache on, then off, in one invocation, so the two are comparable. Writes
bench/results/api_load.json: requests, errors, p50/p95/p99 (ms) per endpoint and cache mode, the load
average around each run, the CPU per request of the server (gunicorn + its PostgreSQL backends) and of
the client, each endpoint's latency from one client alone (no queueing), the off/on p95 ratios, and
"met" {goal: bool} (read by the release gate): each p95 goal at 16 clients with the cache on, and zero
errors in every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")
RESULTS = ROOT / "bench" / "results"
# p95 goals (ms) on this machine: issue 5 (PRODPLAN/KPI) and issue 6 (quality and inventory join at 40 ms).
GOALS_MS = {
    "orders": 40, "order_detail": 25, "schedule_current": 25, "kpis_overview": 30,
    "quality_overview": 40, "quality_by_phase": 40, "quality_heatmap": 40, "inventory_wip": 40, "inventory_wip_mass": 40,
}


def endpoints(order_ids: list[int], product_ids: list[int]) -> dict[str, callable]:
    """Endpoint name -> path maker (random order/product ids for the per-entity endpoints)."""
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
        "quality_overview": lambda rng: "/api/quality/overview",
        "quality_by_phase": lambda rng: "/api/quality/by-phase",
        "quality_heatmap": lambda rng: "/api/quality/heatmap",
        "inventory_wip": lambda rng: "/api/smartinventory/wip",
        "inventory_wip_mass": lambda rng: "/api/smartinventory/wip_mass",
    }


def sample_ids() -> tuple[list[int], list[int]]:
    """Random order ids (2,000) and product ids (500) of the current database."""
    from orders.models import ManufacturingOrder, Product

    order_ids = list(ManufacturingOrder.objects.order_by("?").values_list("id", flat=True)[:2000])
    product_ids = list(Product.objects.values_list("id", flat=True)[:500])
    if not order_ids:
        raise SystemExit("empty database: ingest a workbook first")
    return order_ids, product_ids


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return round(data[low] + (data[high] - data[low]) * (pos - low), 2)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def proc_cpu_rss(pid: int) -> tuple[float, int] | None:
    """(user+system CPU seconds, resident bytes) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]) * PAGE_BYTES


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class ServerSampler(threading.Thread):
    """Samples, every `interval` s, the gunicorn workers' RSS and the CPU of gunicorn and of its PostgreSQL backends.

    The backends are found by application_name (start_gunicorn sets it). CPU is accounted per pid from
    the last sample before mark() to the last sample seen, so connections that close mid-run still count
    up to their last sample."""

    def __init__(self, server_pid: int, app_name: str | None, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.app_name, self.interval = server_pid, app_name, interval
        self.stop_event = threading.Event()
        self.cpu_last: dict[int, float] = {}
        self.cpu_mark: dict[int, float] = {}
        self.rss: list[tuple[float, dict[int, int]]] = []  # (monotonic time, {worker pid: bytes})
        self._db = None

    def _backend_pids(self) -> list[int]:
        if not self.app_name:
            return []
        try:
            if self._db is None:
                import psycopg
                from django.conf import settings

                db = settings.DATABASES["default"]
                self._db = psycopg.connect(host=db["HOST"] or None, port=db["PORT"] or None, dbname=db["NAME"],
                                           user=db["USER"], password=db["PASSWORD"] or None, autocommit=True,
                                           application_name="bench_sampler")
            return [row[0] for row in self._db.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [self.app_name])]
        except Exception:  # noqa: BLE001 - the database may be restarting; try again next sample
            self._db = None
            return []

    def sample(self) -> None:
        workers = child_pids(self.server_pid)
        rss = {}
        for pid in [self.server_pid, *workers, *self._backend_pids()]:
            stat = proc_cpu_rss(pid)
            if stat is None:
                continue
            self.cpu_last[pid] = stat[0]
            if pid in workers:
                rss[pid] = stat[1]
        self.rss.append((time.monotonic(), rss))

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def mark(self) -> None:
        """Start the CPU account now."""
        self.sample()
        self.cpu_mark = dict(self.cpu_last)

    def cpu_seconds(self) -> float:
        self.sample()
        return sum(cpu - self.cpu_mark.get(pid, 0.0) for pid, cpu in self.cpu_last.items())

    def stop(self) -> None:
        self.stop_event.set()
        if self._db is not None:
            self._db.close()


class Recorder:
    """Thread-safe sink of (time, endpoint, ms, outcome) samples; outcome is 'ok', an HTTP status or an exception name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: list[tuple[float, str, float, str]] = []

    def add(self, name: str, ms: float, outcome: str) -> None:
        with self.lock:
            self.samples.append((time.monotonic(), name, ms, outcome))

    def report(self, names, since: float = 0.0, until: float = float("inf")) -> dict:
        rows: dict[str, list[float]] = {name: [] for name in names}
        errors: dict[str, dict[str, int]] = {name: {} for name in names}
        with self.lock:
            samples = [s for s in self.samples if since <= s[0] < until]
        for _, name, ms, outcome in samples:
            if outcome == "ok":
                rows[name].append(ms)
            else:
                errors[name][outcome] = errors[name].get(outcome, 0) + 1
        return {
            name: {"requests": len(rows[name]) + sum(errors[name].values()), "errors": sum(errors[name].values()),
                   "error_kinds": errors[name], "p50_ms": pct(rows[name], 0.5), "p95_ms": pct(rows[name], 0.95),
                   "p99_ms": pct(rows[name], 0.99), "goal_p95_ms": GOALS_MS.get(name)}
            for name in names
        }


# Reads of factory data need a login or a key: the clients send this header (set by use_bench_api_key()).
AUTH_HEADER = ""


def use_bench_api_key() -> None:
    """Issue an API key for the benchmark's clients (as the React frontend reads) and send it on every request."""
    global AUTH_HEADER
    from prodplan.models import ApiKey

    _, raw = ApiKey.generate(name=f"benchmark {datetime.now(UTC).isoformat(timespec='seconds')}")
    AUTH_HEADER = f"X-API-Key: {raw}\r\n"


def get(host: str, port: int, path: str, timeout: float = 30.0) -> str:
    """One GET on a new connection ("Connection: close", as gunicorn's sync workers answer anyway); 'ok' or the failure.

    Raw sockets, not http.client: parsing headers with http.client costs the client ~0.5 ms of CPU per
    request, which on this 2-core machine is taken from the server being measured."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{AUTH_HEADER}"
               "Connection: close\r\n\r\n")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        return type(exc).__name__
    head = chunks[0][:32] if chunks else b""
    if not head.startswith(b"HTTP/1."):
        return "bad_response"
    status = head[9:12].decode("ascii", "replace")
    return "ok" if status == "200" else status


def client_loop(base: str, eps: dict, stop: float, seed: int, recorder: Recorder, stop_event: threading.Event | None = None) -> None:
    """One client: endpoints round-robin (random ids) until `stop` (monotonic time) or stop_event, no think time."""
    parts = urlsplit(base)
    rng = random.Random(seed)
    names = list(eps)
    i = seed
    while time.monotonic() < stop and not (stop_event and stop_event.is_set()):
        name = names[i % len(names)]
        i += 1
        path = eps[name](rng)
        started = time.perf_counter()
        outcome = get(parts.hostname, parts.port, path)
        recorder.add(name, (time.perf_counter() - started) * 1000, outcome)


def run_load(base: str, eps: dict, clients: int, duration: float) -> dict:
    recorder = Recorder()
    stop = time.monotonic() + duration
    threads = [threading.Thread(target=client_loop, args=(base, eps, stop, k, recorder)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return recorder.report(eps)


def service_times(base: str, eps: dict, rounds: int) -> dict:
    """One client, no concurrency: each endpoint `rounds` times in turn (warm cache; random ids as in the load).

    The time one request takes on its own, to set beside the loaded figures (which add queueing)."""
    recorder = Recorder()
    parts = urlsplit(base)
    rng = random.Random(12345)
    for _ in range(rounds):
        for name, path_of in eps.items():
            started = time.perf_counter()
            outcome = get(parts.hostname, parts.port, path_of(rng))
            recorder.add(name, (time.perf_counter() - started) * 1000, outcome)
    return {name: {k: row[k] for k in ("requests", "errors", "p50_ms", "p95_ms")} for name, row in recorder.report(eps).items()}


def wait_ready(base: str, timeout: float = 60) -> None:
    parts = urlsplit(base)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(parts.hostname, parts.port, "/api/prodplan/schedule/current", timeout=5) == "ok":
            return
        time.sleep(0.5)
    raise SystemExit("server did not become ready")


APP_NAME = f"bench_gunicorn_{os.getpid()}"


def with_app_name(url: str) -> str:
    """DATABASE_URL with application_name set, so the sampler can find the server's backends."""
    parts = urlsplit(url)
    query = "&".join(q for q in [parts.query, f"application_name={APP_NAME}"] if q)
    return parts._replace(query=query).geturl()


def start_gunicorn(*, port: int, workers: int, cache: bool, threads: int = 1, extra_env: dict | None = None) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:port with the throttle lifted (its own session, so it can be stopped as a group).

    threads=1 is the deployed configuration (sync workers, docker-compose.yml); threads>1 runs gthread
    workers, which keep client connections alive."""
    env = {**os.environ, "PRODPLAN_CACHE": "1" if cache else "0", "DATABASE_URL": with_app_name(os.environ["DATABASE_URL"]),
           "THROTTLE_ANON": "10000000/min", "THROTTLE_API_KEY": "10000000/min", "DJANGO_DEBUG": "0",
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(64), **(extra_env or {})}
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "prodplan.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--threads", str(threads), "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True)


def stop_gunicorn(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def post_ingestion_warm_up() -> dict | None:
    """With Redis (the deployed setup), run what an ingestion's post-commit tasks run: fill the shared cache.

    Returns the seconds each took, or None with the in-process cache (each gunicorn worker has its own
    copy then, which only the load warm-up fills)."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return None
    from inventory.services import inventory_cache_warm
    from orders.services import orders_cache_warm
    from quality.services import quality_cache_warm

    timings = {}
    for name, warm in (("orders", orders_cache_warm), ("quality", quality_cache_warm), ("inventory", inventory_cache_warm)):
        started = time.perf_counter()
        warm()
        timings[name] = round(time.perf_counter() - started, 2)
    return timings


def run_mode(args, eps: dict, cache: str) -> dict:
    server = None
    base = args.url
    if base is None:
        base = f"http://127.0.0.1:{args.port}"
        server = start_gunicorn(port=args.port, workers=args.workers, cache=cache == "on", threads=args.threads)
    sampler = ServerSampler(server.pid, APP_NAME) if server is not None else None
    try:
        wait_ready(base)
        warmed = post_ingestion_warm_up() if cache == "on" else None
        # Warm-up load: with the in-process cache each worker fills its own copy (the slow analytic endpoints
        # take 0.2-0.6 s each to compute), so the measured window sees the steady state.
        run_load(base, eps, args.clients, args.warmup)
        before = loadavg()
        if sampler is not None:
            sampler.start()
            sampler.mark()
        client_cpu = time.process_time()
        started = time.perf_counter()
        report = run_load(base, eps, args.clients, args.duration)
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = sampler.cpu_seconds() if sampler is not None else None
        after = loadavg()
        single = service_times(base, eps, args.single_rounds) if args.single_rounds else None
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            stop_gunicorn(server)
    total = sum(row["requests"] for row in report.values())
    cpu = {
        # CPU spent per request by gunicorn + its PostgreSQL backends, and by this client process.
        "server_cpu_ms_per_request": round(server_cpu / total * 1000, 2) if server_cpu is not None and total else None,
        "client_cpu_ms_per_request": round(client_cpu / total * 1000, 2) if total else None,
    }
    if cpu["server_cpu_ms_per_request"] is not None:
        # Little's law on an otherwise idle machine: mean latency >= clients x CPU per request / cores.
        cpu["mean_latency_floor_ms"] = round(
            args.clients * (cpu["server_cpu_ms_per_request"] + cpu["client_cpu_ms_per_request"]) / (os.cpu_count() or 1), 1)
    return {"cache": cache, "post_ingestion_warm_up_s": warmed, "loadavg_before": before, "loadavg_after": after, "requests": total,
            "requests_per_second": round(total / elapsed, 1), "errors": sum(row["errors"] for row in report.values()),
            "cpu": cpu, "endpoints": report, "one_client": single}


def goals_met(runs: dict) -> dict[str, bool]:
    """Each p95 goal with the cache on (when that mode ran), and zero errors over every run."""
    met = {}
    if "on" in runs:
        for name, goal in GOALS_MS.items():
            p95 = runs["on"]["endpoints"].get(name, {}).get("p95_ms")
            met[f"{name}_p95_ms"] = p95 is not None and p95 <= goal
    met["zero_errors"] = all(run["errors"] == 0 for run in runs.values())
    return met


def ratios(runs: dict) -> dict[str, float | None]:
    """p95 with the cache off / p95 with it on, per endpoint (only meaningful for runs of one invocation)."""
    if "on" not in runs or "off" not in runs:
        return {}
    out = {}
    for name, row in runs["on"]["endpoints"].items():
        on, off = row["p95_ms"], runs["off"]["endpoints"].get(name, {}).get("p95_ms")
        out[name] = round(off / on, 2) if on and off else None
    return out


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (>1: gthread, keep-alive)")
    parser.add_argument("--cache", choices=["both", "on", "off"], default="both")
    parser.add_argument("--single-rounds", type=int, default=30,
                        help="after the load, each endpoint this many times from one client (0: skip)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--url")
    parser.add_argument("--out", default=str(RESULTS / "api_load.json"))
    args = parser.parse_args()

    django.setup()
    from orders.models import ManufacturingOrder

    use_bench_api_key()
    eps = endpoints(*sample_ids())
    modes = ["on", "off"] if args.cache == "both" else [args.cache]
    runs = {mode: run_mode(args, eps, mode) for mode in modes}
    out = Path(args.out)
    same_invocation = True
    if args.cache != "both" and out.exists():
        # One mode alone: keep the other mode's figures from the previous file (marked as another invocation).
        try:
            previous = json.loads(out.read_text()).get("runs", {})
        except ValueError:
            previous = {}
        for mode, run in previous.items():
            if mode not in runs:
                runs[mode] = run
                same_invocation = False
    result = {
        "benchmark": "api_load", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "clients": args.clients, "workers": args.workers, "threads": args.threads, "duration_s": args.duration, "warmup_s": args.warmup,
        "orders_in_db": ManufacturingOrder.objects.count(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "goals_p95_ms": GOALS_MS, "same_invocation": same_invocation, "runs": runs,
        "p95_ratio_cache_off_over_on": ratios(runs) if same_invocation else {}, "met": goals_met(runs),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for mode in modes:
        run = runs[mode]
        print(f"cache {mode}: {run['requests']} requests, {run['requests_per_second']}/s, {run['errors']} errors, "
              f"load average {run['loadavg_before']} -> {run['loadavg_after']}, CPU per request {run['cpu']}")
        print(f"  {'endpoint':20} {'req':>6} {'err':>4} {'p50':>8} {'p95':>8} {'p99':>8} goal  | one client p50 p95")
        for name, row in run["endpoints"].items():
            one = (run["one_client"] or {}).get(name) or {}
            print(f"  {name:20} {row['requests']:6} {row['errors']:4} {row['p50_ms'] or 0:8.1f} {row['p95_ms'] or 0:8.1f} "
                  f"{row['p99_ms'] or 0:8.1f} {row['goal_p95_ms'] or '':4}  | {one.get('p50_ms') or 0:8.1f} {one.get('p95_ms') or 0:8.1f}")
    print("met:", json.dumps(result["met"]))


if __name__ == "__main__":
    main()
