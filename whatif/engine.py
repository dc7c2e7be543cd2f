"""The deterministic what-if engine: a discrete-event simulation over plain data (no database access).

Two backends run the same model and give identical results (tested): ``simpy`` (the reference,
SimPy processes and PriorityResources) and ``heap`` (the default: a binary-heap event loop, about
5x faster, because SimPy needs ~1 s per run for the full-scale WIP and a scenario is two runs).

Model (documented here once, echoed in every result under "model"):

- Time is in days from the as-of moment (t = 0); the horizon ends at ``horizon_days``.
- Stations are phases; each phase is a SimPy ``PriorityResource`` with ``servers`` parallel servers
  (derived from the data by the selector, then changed by ``capacity_overrides``).
- Every order walks its remaining route (a tuple of phase ids). A step whose sampled duration is 0
  (the ERP's event-marker phases) passes without taking a server.
- Before each step the order waits a delay sampled from the observed waits before that phase
  (start minus the previous phase's end, or the order's creation; by family and phase, else phase,
  else all), without a server: shifts, transport, curing and batching are in the data, not in the
  model. The simulated queue adds contention at the scenario's capacity on top. An order waiting at
  t = 0 takes the residual of a wait longer than what it has already waited. An order that has
  already waited (or been in service) longer than anything observed is stalled: it does not move
  in the horizon and is counted in ``orders_stalled`` (the data hold orders left open for years).
- Durations are elapsed days sampled from the observed distribution of (family, phase), else
  (phase), else all phases, by inverse transform of uniforms drawn once per order step from the
  scenario seed. Baseline and scenario use the same uniforms (common random numbers), so a delta
  between them is the effect of the scenario, not sampling noise. A step already in service at
  t = 0 takes the residual of a duration drawn from the samples longer than its elapsed time.
- Priority rules order each phase queue: FIFO (request time), SPT / LPT (the step's sampled
  duration, as a planner knowing standard times would), OLDEST_FIRST (order creation time),
  RISK_FIRST (higher risk score first). Ties fall back to request order, which is deterministic.
- Arrivals (optional) are a Poisson stream at the historical rate, each new order a product drawn
  from the real mix of the last weeks, or an explicit list (the backtest feeds the real arrivals).
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

import simpy

from prodplan.stats import percentile

PRIORITY_RULES = ("FIFO", "SPT", "LPT", "OLDEST_FIRST", "RISK_FIRST")
TOP_AFFECTED = 20
_ARRIVAL_STREAM_SALT = 0x5EED_A77


@dataclass(frozen=True)
class SimOrder:
    """One order as the engine sees it: what is left of its route and where it stands."""

    key: str  # stable identity across runs: "wip:<order id>" or "new:<n>"
    order_id: int | None
    product_id: int | None
    family: str
    route: tuple[int, ...]  # remaining phase ids, the first possibly in service at t = 0
    created_day: float = 0.0  # creation time in days relative to as-of (negative for WIP)
    arrival_day: float = 0.0  # when it enters the system (0 for WIP)
    in_service_elapsed: float | None = None  # days already spent in route[0] at t = 0, if in service
    waiting_elapsed: float | None = None  # else: days already waited before route[0] (since the last phase ended)
    risk: float = 0.0


@dataclass(frozen=True)
class ArrivalMix:
    """One real order of the recent past, used as a template for a new arrival."""

    product_id: int | None
    family: str
    route: tuple[int, ...]


@dataclass
class SimInput:
    """Everything the engine needs, gathered from the database by ``whatif.selectors``."""

    phases: dict[int, str]
    capacity: dict[int, int]
    durations_family_phase: dict[tuple[str, int], tuple[float, ...]]  # sorted samples, days
    durations_phase: dict[int, tuple[float, ...]]
    durations_global: tuple[float, ...]
    orders: list[SimOrder]
    arrival_rate_per_day: float = 0.0
    arrival_mix: list[ArrivalMix] = field(default_factory=list)
    fixed_arrivals: list[SimOrder] | None = None  # real arrivals (backtest); replaces the Poisson stream
    # Observed waits before a phase (its start minus the previous phase's end, or the order's creation):
    # shifts, transport, curing, batching and historical queueing, replayed as delays without a server.
    gaps_family_phase: dict[tuple[str, int], tuple[float, ...]] = field(default_factory=dict)
    gaps_phase: dict[int, tuple[float, ...]] = field(default_factory=dict)
    gaps_global: tuple[float, ...] = ()
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    priority_rule: str = "FIFO"
    capacity_overrides: tuple[tuple[int, str, float], ...] = ()  # (phase_id, "servers"|"multiplier", value)
    coef_overrides: tuple[tuple[int | None, str | None, int | None, float], ...] = ()  # (phase, family, product, x)
    horizon_days: float = 56.0
    arrivals: bool = True
    seed: int = 0

    @classmethod
    def from_inputs(cls, inputs: dict) -> Scenario:
        """Build from the canonical input dict the API stores."""
        return cls(
            priority_rule=inputs.get("priority_rule", "FIFO"),
            capacity_overrides=tuple(
                (int(c["phase_id"]), "servers" if c.get("servers") is not None else "multiplier",
                 float(c["servers"] if c.get("servers") is not None else c["multiplier"]))
                for c in inputs.get("capacity_overrides", [])
            ),
            coef_overrides=tuple(
                (c.get("phase_id"), c.get("family"), c.get("product_id"), float(c["multiplier"]))
                for c in inputs.get("coef_overrides", [])
            ),
            horizon_days=float(inputs.get("horizon_days", 56)),
            arrivals=bool(inputs.get("arrivals", True)),
            seed=int(inputs.get("seed", 0)),
        )

    def baseline(self) -> Scenario:
        """The same run without overrides and with FIFO: what the factory does today."""
        return Scenario(horizon_days=self.horizon_days, arrivals=self.arrivals, seed=self.seed)


def capacity_for(sim_input: SimInput, scenario: Scenario) -> dict[int, int]:
    """Servers per phase after the scenario's overrides (at least one server each)."""
    servers = {phase: max(1, int(n)) for phase, n in sim_input.capacity.items()}
    for phase, kind, value in scenario.capacity_overrides:
        base = servers.get(phase, 1)
        servers[phase] = max(1, int(value) if kind == "servers" else int(round(base * value)))
    return servers


def _coef(scenario: Scenario, phase: int, family: str, product: int | None) -> float:
    """Product of every coefficient override that matches the step (unset fields match everything)."""
    factor = 1.0
    for o_phase, o_family, o_product, mult in scenario.coef_overrides:
        if o_phase is not None and o_phase != phase:
            continue
        if o_family is not None and o_family != family:
            continue
        if o_product is not None and o_product != product:
            continue
        factor *= mult
    return factor


def _distribution(sim_input: SimInput, family: str, phase: int, residual: bool = False) -> tuple[float, ...]:
    # A residual (t = 0, already elapsed) is drawn from the phase's whole tail: a family's few samples
    # would call an order stalled too soon.
    dist = None if residual else sim_input.durations_family_phase.get((family, phase))
    if dist:
        return dist
    dist = sim_input.durations_phase.get(phase)
    if dist:
        return dist
    return sim_input.durations_global or (0.0,)


def _gap_distribution(sim_input: SimInput, family: str, phase: int, residual: bool = False) -> tuple[float, ...]:
    return ((None if residual else sim_input.gaps_family_phase.get((family, phase))) or sim_input.gaps_phase.get(phase)
            or sim_input.gaps_global or (0.0,))


def _uniforms(orders: Iterable[SimOrder], rng: random.Random) -> dict[str, list[float]]:
    """Two uniforms per route step (duration, wait), drawn in a fixed order: every run with the seed sees the same."""
    return {o.key: [rng.random() for _ in range(2 * len(o.route))] for o in orders}


def _arrivals(sim_input: SimInput, scenario: Scenario) -> list[SimOrder]:
    """The new orders of the horizon: the real ones when given, else a seeded Poisson stream."""
    if not scenario.arrivals:
        return []
    if sim_input.fixed_arrivals is not None:
        return [o for o in sim_input.fixed_arrivals if o.arrival_day < scenario.horizon_days]
    rate, mix = sim_input.arrival_rate_per_day, sim_input.arrival_mix
    if rate <= 0 or not mix:
        return []
    rng = random.Random(scenario.seed ^ _ARRIVAL_STREAM_SALT)
    out, t, n = [], 0.0, 0
    while True:
        t += rng.expovariate(rate)
        if t >= scenario.horizon_days:
            return out
        template = mix[int(rng.random() * len(mix))]
        n += 1
        out.append(SimOrder(key=f"new:{n}", order_id=None, product_id=template.product_id, family=template.family,
                            route=template.route, created_day=t, arrival_day=t))


def _sample(dist: tuple[float, ...], u: float, coef: float, elapsed: float | None) -> float | None:
    """Inverse-transform sample; with `elapsed`, the residual of a sample longer than it.

    None when nothing observed lasted that long: the order is stalled (the data hold orders left
    open for years; replaying them as if they were about to move would flood the first weeks)."""
    if elapsed is None:
        return dist[int(u * len(dist))] * coef
    lo = bisect_right(dist, elapsed / coef) if coef > 0 else len(dist)
    if lo >= len(dist):
        return None
    return dist[lo + int(u * (len(dist) - lo))] * coef - elapsed


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _simpy_loop(jobs, servers: dict[int, int], horizon: float) -> tuple[dict, dict, dict, dict, int]:
    """The reference backend: one SimPy process per order, one PriorityResource per phase.

    A job is (key, arrival day, route, durations, waits, priorities), all fixed before the run."""
    env = simpy.Environment()
    resources = {p: simpy.PriorityResource(env, capacity=n) for p, n in servers.items()}
    busy, wait_sum, wait_n = dict.fromkeys(servers, 0.0), dict.fromkeys(servers, 0.0), dict.fromkeys(servers, 0)
    finish: dict[str, float] = {}
    steps = [0]

    def walk(key, arrival, route, durations, gaps, prio):
        if arrival > 0:
            yield env.timeout(arrival)
        for phase, d, g, pr in zip(route, durations, gaps, prio, strict=True):
            if g > 0:
                yield env.timeout(g)
            if d <= 0:
                continue
            res = resources[phase]
            t0 = env.now
            req = res.request(priority=pr)
            yield req
            start = env.now
            wait_sum[phase] += start - t0
            wait_n[phase] += 1
            busy[phase] += min(start + d, horizon) - start
            steps[0] += 1
            yield env.timeout(d)
            res.release(req)
        finish[key] = env.now

    for job in jobs:
        env.process(walk(*job))
    env.run(until=horizon)
    return finish, busy, wait_sum, wait_n, steps[0]


_END, _READY, _ARRIVE = 0, 1, 2


def _heap_loop(jobs, servers: dict[int, int], horizon: float) -> tuple[dict, dict, dict, dict, int]:
    """The fast backend: the same model as ``_simpy_loop`` on a plain binary-heap event list.

    SimPy spends most of its time on generator resumption, event objects and re-sorting the
    PriorityResource queue on every request (measured ~1 s per run for the full-scale WIP, so
    ~2 s for baseline plus scenario); this loop keeps one heap of timed events and one heap
    queue per phase, with the same tie-breaking (priority, request time, request order)."""
    free = dict(servers)
    queues: dict[int, list] = {p: [] for p in servers}
    busy, wait_sum, wait_n = dict.fromkeys(servers, 0.0), dict.fromkeys(servers, 0.0), dict.fromkeys(servers, 0)
    finish: dict[str, float] = {}
    events: list = []  # (time, seq, job index, step index, kind)
    seq = 0
    steps = 0
    push, pop = heapq.heappush, heapq.heappop

    def start(now, j, i, t_req):
        nonlocal seq, steps
        phase, d = jobs[j][2][i], jobs[j][3][i]
        wait_sum[phase] += now - t_req
        wait_n[phase] += 1
        busy[phase] += min(now + d, horizon) - now
        steps += 1
        seq += 1
        push(events, (now + d, seq, j, i, _END))

    def advance(now, j, i):
        """Order j is done with step i-1 at `now`: wait before step i, skip zero-duration steps, queue."""
        nonlocal seq
        key, _, route, durations, gaps, prio = jobs[j]
        n = len(route)
        while i < n:
            if gaps[i] > 0:
                seq += 1
                push(events, (now + gaps[i], seq, j, i, _READY))
                return
            if durations[i] > 0:
                ready(now, j, i)
                return
            i += 1
        finish[key] = now

    def ready(now, j, i):
        nonlocal seq
        if jobs[j][3][i] <= 0:
            advance(now, j, i + 1)
            return
        phase = jobs[j][2][i]
        if free[phase] > 0:
            free[phase] -= 1
            start(now, j, i, now)
        else:
            seq += 1
            push(queues[phase], (jobs[j][5][i], now, seq, j, i))

    for j, job in enumerate(jobs):
        if job[1] > 0:
            seq += 1
            push(events, (job[1], seq, j, 0, _ARRIVE))
        else:
            advance(0.0, j, 0)
    while events and events[0][0] < horizon:
        now, _, j, i, kind = pop(events)
        if kind == _ARRIVE:
            advance(now, j, 0)
        elif kind == _READY:
            ready(now, j, i)
        else:
            phase = jobs[j][2][i]
            q = queues[phase]
            if q:
                _, t_req, _, jq, iq = pop(q)
                start(now, jq, iq, t_req)
            else:
                free[phase] += 1
            advance(now, j, i + 1)
    return finish, busy, wait_sum, wait_n, steps


BACKENDS = {"heap": _heap_loop, "simpy": _simpy_loop}


def run_once(sim_input: SimInput, scenario: Scenario, *, backend: str = "heap") -> dict:
    """Simulate one scenario; returns KPIs and per-order finish days (absent: not finished in horizon)."""
    if scenario.priority_rule not in PRIORITY_RULES:
        raise ValueError(f"unknown priority rule {scenario.priority_rule!r}")
    horizon = float(scenario.horizon_days)
    servers = capacity_for(sim_input, scenario)
    wip = sorted(sim_input.orders, key=lambda o: o.key)
    arrivals = _arrivals(sim_input, scenario)
    u_wip = _uniforms(wip, random.Random(scenario.seed))
    u_new = _uniforms(arrivals, random.Random(scenario.seed ^ (_ARRIVAL_STREAM_SALT << 1)))
    phases_used = sorted({p for o in wip for p in o.route} | {p for o in arrivals for p in o.route})
    servers = {p: servers.get(p, 1) for p in phases_used}
    rule = scenario.priority_rule

    def priority(order: SimOrder, duration: float) -> float:
        if rule == "SPT":
            return duration
        if rule == "LPT":
            return -duration
        if rule == "OLDEST_FIRST":
            return order.created_day
        if rule == "RISK_FIRST":
            return -order.risk
        return 0.0

    # Durations and priorities are fixed before the loop, so both backends see the same numbers.
    # Steps in service at t = 0 keep their server: they start first and jump every queue.
    jobs = []
    stalled = 0
    in_service_first = sorted(wip, key=lambda o: o.in_service_elapsed is None)
    for o, uniforms in [(o, u_wip[o.key]) for o in in_service_first] + [(o, u_new[o.key]) for o in arrivals]:
        durations, gaps, prio = [], [], []
        n = len(o.route)
        for i, phase in enumerate(o.route):
            elapsed = o.in_service_elapsed if i == 0 else None
            dist = _distribution(sim_input, o.family, phase, residual=elapsed is not None)
            d = _sample(dist, uniforms[i], _coef(scenario, phase, o.family, o.product_id), elapsed)
            if i == 0 and elapsed is not None:
                g = 0.0
            else:
                waited = o.waiting_elapsed if i == 0 else None
                g = _sample(_gap_distribution(sim_input, o.family, phase, residual=waited is not None),
                            uniforms[n + i], 1.0, waited)
            if d is None or g is None:  # stalled at t = 0: it holds no server and never moves
                stalled += 1
                d, g, elapsed = 0.0, math.inf, None
            durations.append(d)
            gaps.append(g)
            prio.append(-math.inf if elapsed is not None else priority(o, d))
        jobs.append((o.key, o.arrival_day, o.route, durations, gaps, prio))
    finish, busy, wait_sum, wait_n, steps = BACKENDS[backend](jobs, servers, horizon)

    weeks = max(1, math.ceil(horizon / 7.0))
    weekly = [0] * weeks
    for t in finish.values():
        weekly[min(int(t // 7.0), weeks - 1)] += 1
    wip_remaining = [finish[o.key] for o in wip if o.key in finish]
    new_lead = [finish[o.key] - o.arrival_day for o in arrivals if o.key in finish]
    utilisation = {p: busy[p] / (servers[p] * horizon) for p in phases_used} if horizon > 0 else {}
    queue_wait = {p: (wait_sum[p] / wait_n[p]) if wait_n[p] else 0.0 for p in phases_used}
    bottleneck = max(phases_used, key=lambda p: (utilisation[p], wait_sum[p], -p)) if phases_used else None
    total = len(wip) + len(arrivals)
    return {
        "kpis": {
            "orders_in": {"wip": len(wip), "arrivals": len(arrivals)},
            "orders_stalled": stalled,
            "orders_finished": len(finish),
            "orders_finished_wip": len(wip_remaining),
            "orders_finished_arrivals": len(new_lead),
            "throughput_per_week": weekly,
            "mean_throughput_per_week": _r(len(finish) / (horizon / 7.0)) if horizon else None,
            "mean_remaining_lead_time_days": _r(sum(wip_remaining) / len(wip_remaining)) if wip_remaining else None,
            "p90_remaining_lead_time_days": _r(percentile(wip_remaining, 0.9)),
            "mean_lead_time_arrivals_days": _r(sum(new_lead) / len(new_lead)) if new_lead else None,
            "wip_at_horizon_end": total - len(finish),
            "mean_queue_wait_days": {str(p): _r(queue_wait[p]) for p in phases_used},
            "mean_queue_wait_days_overall": _r(sum(wait_sum.values()) / max(1, sum(wait_n.values()))),
            "utilisation": {str(p): _r(utilisation[p]) for p in phases_used},
            "bottleneck_phase_id": bottleneck,
            "servers": {str(p): servers[p] for p in phases_used},
        },
        "finish_days": finish,
        "steps": steps,
    }


def _delta(a, b):
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return _r(b - a)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [_delta(x, y) for x, y in zip(a, b, strict=True)]
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _delta(a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=str)
                if isinstance(a.get(k), int | float | list | dict) and isinstance(b.get(k), int | float | list | dict)}
    return None


def simulate(sim_input: SimInput, scenario: Scenario, *, backend: str = "heap") -> dict:
    """Baseline (FIFO, no overrides) and scenario with the same seed and horizon, and their comparison."""
    base = run_once(sim_input, scenario.baseline(), backend=backend)
    scen = run_once(sim_input, scenario, backend=backend)
    keys = sorted(set(base["finish_days"]) | set(scen["finish_days"]))
    horizon = float(scenario.horizon_days)
    orders = {o.key: o for o in sim_input.orders}
    affected = []
    for k in keys:
        b, s = base["finish_days"].get(k), scen["finish_days"].get(k)
        # Unfinished in one run: count the change against the horizon end (a lower bound of it).
        change = (s if s is not None else horizon) - (b if b is not None else horizon)
        if abs(change) > 1e-9:
            o = orders.get(k)
            affected.append({
                "key": k, "order_id": o.order_id if o else None, "product_id": o.product_id if o else None,
                "baseline_finish_day": _r(b), "scenario_finish_day": _r(s), "change_days": _r(change),
            })
    affected.sort(key=lambda r: (-abs(r["change_days"]), r["key"]))
    bk, sk = base["kpis"], scen["kpis"]
    names = sim_input.phases
    return {
        "baseline": bk,
        "scenario": sk,
        "deltas": {k: _delta(bk[k], sk[k]) for k in bk if k not in ("bottleneck_phase_id", "orders_in")},
        "bottleneck": {
            "baseline": {"phase_id": bk["bottleneck_phase_id"], "name": names.get(bk["bottleneck_phase_id"])},
            "scenario": {"phase_id": sk["bottleneck_phase_id"], "name": names.get(sk["bottleneck_phase_id"])},
        },
        "top_affected_orders": affected[:TOP_AFFECTED],
        "orders_affected": len(affected),
        "steps": base["steps"] + scen["steps"],
    }
