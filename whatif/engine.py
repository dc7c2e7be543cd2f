"""The deterministic what-if engine: a discrete-event queueing simulation over plain data (no database access).

Two backends run the same model and give identical results (tested): ``simpy`` (the reference,
SimPy processes and PriorityResources) and ``heap`` (the default: a binary-heap event loop, about
5x faster, because SimPy needs ~1 s per run for the full-scale WIP and a scenario is two runs).

Model (documented here once, echoed in every result under "model"; the measured choices behind it are in
docs/DECISIONS.md):

- Time is in days from the as-of moment (t = 0); the horizon ends at ``horizon_days``.
- Stations are phases; each phase has ``servers`` parallel stations ("postos"). The selector measures
  them from the data as the simultaneous work the phase sustains in its busy weeks (the 90th percentile
  of the weekly mean number of order phases in service over the year before as-of, rounded up, at least 1:
  throughput x touch time, Little's law; the instantaneous peak overstates a constraint's stations, see
  docs/DECISIONS.md) and ``capacity_overrides`` change them. A phase whose start rate stays flat however long its
  queue grew (throughput-limited, whatif.selectors.CAPACITY_RULE) gets the stations its saturated start rate
  needs and a station cycle longer than the touch time (``station_hold``): the order leaves the phase at the end
  of its touch time, the station takes the next order only after touch time x hold factor (set-up, cleaning,
  a shared crew: whatever kept the measured rate below stations / touch time).
- Every order walks its remaining route (a tuple of phase ids). At each step it:
  1. waits a non-capacity delay (transfer, curing, paperwork) counted in the phase's open working
     time: sampled from the waits observed before that phase when a station of it was free at the
     moment the order became ready and no other order was waiting for it (so no queueing for that
     phase is in them), by family and phase, else phase (at least 5 such delays), else all;
  2. queues for a station of the phase (the priority rule orders the queue): this is the wait that
     comes out of capacity;
  3. starts only inside the phase's working calendar (hours of the week learnt from the starts; a
     station freed outside it stays idle until the calendar opens) and then works its touch time
     (start to end, sampled by family and phase, else phase, else all) to the end, in or out of the
     calendar (work in progress continues);
  4. with the phase's rework probability (orders re-entering the phase, measured), goes through the
     phase once more (a rework pass: its own delay and touch-time samples when measured, else the
     first pass's).
  A step whose touch time is 0 (the ERP's event-marker phases) takes no station; it still waits its
  delay and is booked inside the calendar.
  The delay of step 1 grows with the shop's load when the data show it does (``delay_load_elasticity`` b,
  measured by the selector, the phase's own in ``delay_load_elasticity_by_phase`` when it has one): it is scaled by (load now / the load the delays were measured at) ** b, load = station
  starts per day over the trailing ``load_window_days`` (the real starts before as-of, then the simulated ones),
  the factor kept within [LOAD_FACTOR_MIN, LOAD_FACTOR_MAX]. Work released faster (a station more at a gate)
  thus meets longer waits downstream (shared crews, handling), as measured, not only the stations' queues.
- WIP at t = 0: a step in service keeps its station and takes the residual of a touch time drawn from
  the samples longer than its elapsed time (fewer than MIN_TAIL_SAMPLES longer: it ends at once, "overdue");
  an order waiting takes the residual of a delay longer than what it already waited (same rule), then queues. Stalled and abandoned
  orders (the order-state model) are not in the WIP; ``orders_stalled`` reports their count at as-of.
- Draws are inverse transforms of uniforms drawn once per order step from the scenario seed; baseline
  and scenario use the same uniforms (common random numbers), so a delta between them is the effect of
  the scenario, not sampling noise. A coefficient override scales the touch time (and a residual) only,
  never whether an order moves.
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
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, field

import simpy

from prodplan.stats import percentile

PRIORITY_RULES = ("FIFO", "SPT", "LPT", "OLDEST_FIRST", "RISK_FIRST")
TOP_AFFECTED = 20
HOURS_PER_WEEK = 168
MAX_REWORK_PROBABILITY = 0.9
MIN_TAIL_SAMPLES = 3  # with MIN_TAIL_BASE samples or more, a residual needs this many longer ones, else it ends now
MIN_TAIL_BASE = 20
_ARRIVAL_STREAM_SALT = 0x5EED_A77
_UNIFORMS_PER_STEP = 5  # touch time, delay, rework coin, rework touch time, rework delay
LOAD_FACTOR_MIN, LOAD_FACTOR_MAX = 0.25, 4.0


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
    capacity: dict[int, int]  # stations per phase
    durations_family_phase: dict[tuple[str, int], tuple[float, ...]]  # touch times, sorted samples, days
    durations_phase: dict[int, tuple[float, ...]]
    durations_global: tuple[float, ...]
    orders: list[SimOrder]
    arrival_rate_per_day: float = 0.0
    arrival_mix: list[ArrivalMix] = field(default_factory=list)
    fixed_arrivals: list[SimOrder] | None = None  # real arrivals (backtest); replaces the Poisson stream
    # Non-capacity delays before a phase (days of the phase's open working time), measured on the waits
    # that happened while a station of the phase was free: transfer, curing, paperwork; not queueing.
    gaps_family_phase: dict[tuple[str, int], tuple[float, ...]] = field(default_factory=dict)
    gaps_phase: dict[int, tuple[float, ...]] = field(default_factory=dict)
    gaps_global: tuple[float, ...] = ()
    # Working calendar: 168 booleans (hour 0 = Monday 00:00 local time), per phase, else the default;
    # None: always open. calendar_origin_hour: the hour of the week at t = 0.
    calendars: dict[int, tuple[bool, ...]] = field(default_factory=dict)
    default_calendar: tuple[bool, ...] | None = None
    calendar_origin_hour: float = 0.0
    # Rework: probability that an order passes a phase once more, and the rework passes' samples.
    rework_probability: dict[int, float] = field(default_factory=dict)
    rework_durations_phase: dict[int, tuple[float, ...]] = field(default_factory=dict)
    rework_gaps_phase: dict[int, tuple[float, ...]] = field(default_factory=dict)
    stalled_orders: int = 0  # stalled at as-of (order-state model): not simulated, reported
    # Station cycle / touch time per phase (>= 1; absent: 1): a station stays taken that much longer than the
    # order's touch time (throughput-limited phases, whatif.selectors.CAPACITY_RULE).
    station_hold: dict[int, float] = field(default_factory=dict)
    # Load-dependent delays (see the module docstring): elasticity (0: off), the load (starts per day) the delay
    # samples were measured at, the real station starts of the trailing window before as-of (days, negative).
    delay_load_elasticity: float = 0.0
    delay_load_elasticity_by_phase: dict[int, float] = field(default_factory=dict)
    delay_reference_load: float = 0.0
    recent_starts: tuple[float, ...] = ()
    load_window_days: float = 14.0
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


class WeekCalendar:
    """Open hours of a week, and the two questions the engine asks: how long until it opens, and how much
    elapsed time holds a given amount of open time. Times are days from as-of; ``origin`` is the hour of
    the week at t = 0."""

    def __init__(self, open_hours: tuple[bool, ...] | None, origin: float):
        hours = tuple(bool(h) for h in open_hours) if open_hours else ()
        self.always = len(hours) != HOURS_PER_WEEK or all(hours) or not any(hours)
        self.origin = origin
        if self.always:
            return
        self.open = hours
        self.cum = [0]
        for h in hours:
            self.cum.append(self.cum[-1] + h)
        self.week = self.cum[-1]
        self.open_idx = [h for h in range(HOURS_PER_WEEK) if hours[h]]
        self.cum_at_open = [self.cum[h] for h in self.open_idx]
        # hours from the start of hour h to the start of the next open hour (0 when h is open)
        nxt = [0] * HOURS_PER_WEEK
        for h in range(HOURS_PER_WEEK):
            k = 0
            while not hours[(h + k) % HOURS_PER_WEEK]:
                k += 1
            nxt[h] = k
        self.next_open = nxt

    def until_open(self, t: float, tie: float = 0.0) -> float:
        """Days from t until the calendar is open (0 when it is); `tie` is added when it had to wait (see _tie)."""
        if self.always:
            return 0.0
        x = self.origin + t * 24.0
        h = x - math.floor(x / HOURS_PER_WEEK) * HOURS_PER_WEEK
        hi = min(int(h), HOURS_PER_WEEK - 1)
        if self.open[hi]:
            return 0.0
        return (self.next_open[hi] - (h - hi)) / 24.0 + tie

    def _position(self, t: float) -> float:
        """Open hours from the origin's week start to t."""
        x = self.origin + t * 24.0
        k = math.floor(x / HOURS_PER_WEEK)
        h = x - k * HOURS_PER_WEEK
        hi = min(int(h), HOURS_PER_WEEK - 1)
        return k * self.week + self.cum[hi] + ((h - hi) if self.open[hi] else 0.0)

    def open_between(self, t0: float, t1: float) -> float:
        """Days of open time between t0 and t1 (t1 >= t0)."""
        if self.always:
            return max(0.0, t1 - t0)
        return max(0.0, (self._position(t1) - self._position(t0)) / 24.0)

    def after_open(self, t: float, open_days: float, tie: float = 0.0) -> float:
        """Elapsed days from t that hold `open_days` of open time (0 for no delay); `tie` is added when the delay
        crossed a closed period (see _tie)."""
        if open_days <= 0:
            return 0.0
        if self.always:
            return open_days
        x = self.origin + t * 24.0
        k = math.floor(x / HOURS_PER_WEEK)
        h = x - k * HOURS_PER_WEEK
        hi = min(int(h), HOURS_PER_WEEK - 1)
        pos = k * self.week + self.cum[hi] + ((h - hi) if self.open[hi] else 0.0)
        target = pos + open_days * 24.0
        k2 = math.floor(target / self.week)
        rem = target - k2 * self.week
        j = max(0, bisect_right(self.cum_at_open, rem) - 1)
        x2 = k2 * HOURS_PER_WEEK + self.open_idx[j] + (rem - self.cum_at_open[j])
        delta = max(0.0, (x2 - x) / 24.0)
        return delta + tie if delta > open_days + 1e-12 else delta


class ShopLoad:
    """Station starts per day over the trailing window at a moment of the run, and the delay factor it gives.

    Both backends record every start they book (not the steps in service at t = 0: those are in the real starts)
    and ask at a moment `now` for the starts strictly before it, so the answer never depends on the order in which
    same-time events are processed."""

    def __init__(self, sim_input: SimInput):
        self.b = max(0.0, float(sim_input.delay_load_elasticity or 0.0))
        self.ref = float(sim_input.delay_reference_load or 0.0)
        self.window = float(sim_input.load_window_days or 14.0)
        self.history = sorted(sim_input.recent_starts)
        self.starts: list[float] = []
        self.by_phase = dict(sim_input.delay_load_elasticity_by_phase or {})
        self.on = (self.b > 0 or any(v > 0 for v in self.by_phase.values())) and self.ref > 0

    def record(self, t: float) -> None:
        if self.on:
            insort(self.starts, t)

    def factor(self, now: float, phase: int | None = None) -> float:
        if not self.on:
            return 1.0
        b = self.by_phase.get(phase, self.b)
        if b <= 0:
            return 1.0
        lo = now - self.window
        n = (bisect_left(self.history, now) - bisect_right(self.history, lo)
             + bisect_left(self.starts, now) - bisect_right(self.starts, lo))
        return min(LOAD_FACTOR_MAX, max(LOAD_FACTOR_MIN, (n / self.window / self.ref) ** b))


def _tie(j: int) -> float:
    """A few microseconds per job: orders pushed to the same opening of the calendar reach it one after another
    in job order, so both backends see the same order of events (SimPy and the heap number same-time events
    differently)."""
    return (j + 1) * 1e-9


def calendar_for(sim_input: SimInput, phase: int) -> WeekCalendar:
    return WeekCalendar(sim_input.calendars.get(phase, sim_input.default_calendar), sim_input.calendar_origin_hour)


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
    # would call an order overdue too soon.
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
    """Five uniforms per route step, drawn in a fixed order: every run with the seed sees the same."""
    return {o.key: [rng.random() for _ in range(_UNIFORMS_PER_STEP * len(o.route))] for o in orders}


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


def _sample(dist: tuple[float, ...], u: float, coef: float = 1.0, elapsed: float | None = None) -> float:
    """Inverse-transform sample times coef; with `elapsed`, the residual of a sample longer than it (0 when none is,
    or when fewer than MIN_TAIL_SAMPLES of MIN_TAIL_BASE or more are: a residual from one or two extreme
    samples is noise).

    The tail is chosen on the unscaled samples, so a coefficient changes how long the rest takes, never
    whether the order moves."""
    if elapsed is None:
        return dist[min(int(u * len(dist)), len(dist) - 1)] * coef
    lo = bisect_right(dist, elapsed)
    if lo >= len(dist) or (len(dist) >= MIN_TAIL_BASE and len(dist) - lo < MIN_TAIL_SAMPLES):
        return 0.0  # (almost) nothing observed lasted that long: it ends now
    return (dist[lo + min(int(u * (len(dist) - lo)), len(dist) - lo - 1)] - elapsed) * coef


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


# A job is (key, arrival day, phases, delays (open days), durations, priorities, holds), all fixed before the run
# (holds: the station's time after the order's touch time ends, 0 unless the phase has a station_hold factor);
# calendars maps a phase to its WeekCalendar. Both loops compute every time as now + delta, with the same deltas.

def _simpy_loop(jobs, servers: dict[int, int], calendars: dict, horizon: float,
                load: ShopLoad) -> tuple[dict, dict, dict, dict, int]:
    """The reference backend: one SimPy process per order, one PriorityResource per phase."""
    env = simpy.Environment()
    resources = {p: simpy.PriorityResource(env, capacity=n) for p, n in servers.items()}
    busy, wait_sum, wait_n = dict.fromkeys(servers, 0.0), dict.fromkeys(servers, 0.0), dict.fromkeys(servers, 0)
    finish: dict[str, float] = {}
    steps = [0]

    def hold_then_release(res, req, extra):
        yield env.timeout(extra)
        res.release(req)

    def walk(j, key, arrival, route, delays, durations, prio, holds):
        tie = _tie(j)
        if arrival > 0:
            yield env.timeout(arrival)
        for phase, g, d, pr, extra in zip(route, delays, durations, prio, holds, strict=True):
            cal = calendars[phase]
            if g > 0:
                yield env.timeout(cal.after_open(env.now, g * load.factor(env.now, phase), tie))
            if d <= 0:
                w = cal.until_open(env.now, tie)
                if w > 0:
                    yield env.timeout(w)
                continue
            res = resources[phase]
            t0 = env.now
            req = res.request(priority=pr)
            yield req
            lag = 0.0 if pr == -math.inf else cal.until_open(env.now)
            start = env.now + lag
            if pr != -math.inf:
                load.record(start)
            wait_sum[phase] += start - t0
            wait_n[phase] += 1
            busy[phase] += max(0.0, min(start + d + extra, horizon) - start)
            steps[0] += 1
            yield env.timeout(lag + d)
            if extra > 0:  # the order moves on; the station stays taken for the rest of its cycle
                env.process(hold_then_release(res, req, extra))
            else:
                res.release(req)
        finish[key] = env.now

    for j, job in enumerate(jobs):
        env.process(walk(j, *job))
    env.run(until=horizon)
    return finish, busy, wait_sum, wait_n, steps[0]


_END, _READY, _ARRIVE, _PASS, _FREE = 0, 1, 2, 3, 4


def _heap_loop(jobs, servers: dict[int, int], calendars: dict, horizon: float,
               load: ShopLoad) -> tuple[dict, dict, dict, dict, int]:
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
        phase, d, pr, extra = jobs[j][2][i], jobs[j][4][i], jobs[j][5][i], jobs[j][6][i]
        lag = 0.0 if pr == -math.inf else calendars[phase].until_open(now)
        begin = now + lag
        if pr != -math.inf:
            load.record(begin)
        wait_sum[phase] += begin - t_req
        wait_n[phase] += 1
        busy[phase] += max(0.0, min(begin + d + extra, horizon) - begin)
        steps += 1
        seq += 1
        push(events, (now + (lag + d), seq, j, i, _END))

    def advance(now, j, i):
        """Order j is done with step i-1 at `now`: the delay before step i, then the queue."""
        nonlocal seq
        route, delays = jobs[j][2], jobs[j][3]
        if i >= len(route):
            finish[jobs[j][0]] = now
            return
        if delays[i] > 0:
            seq += 1
            push(events, (now + calendars[route[i]].after_open(now, delays[i] * load.factor(now, route[i]), _tie(j)), seq, j, i,
                          _READY))
            return
        ready(now, j, i)

    def ready(now, j, i):
        nonlocal seq
        phase = jobs[j][2][i]
        if jobs[j][4][i] <= 0:  # an event marker: no station, booked inside the calendar
            w = calendars[phase].until_open(now, _tie(j))
            if w > 0:
                seq += 1
                push(events, (now + w, seq, j, i, _PASS))
            else:
                advance(now, j, i + 1)
            return
        q = queues[phase]
        if free[phase] > 0 and not q:
            free[phase] -= 1
            start(now, j, i, now)
            return
        seq += 1
        push(q, (jobs[j][5][i], now, seq, j, i))
        if free[phase] > 0:  # a station freed at this instant goes to the head of the queue, as in SimPy
            free[phase] -= 1
            _, t_req, _, jq, iq = pop(q)
            start(now, jq, iq, t_req)

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
        elif kind == _PASS:
            advance(now, j, i + 1)
        elif kind == _END and jobs[j][6][i] > 0:
            # the order moves on at the end of its touch time; the station frees after the rest of its cycle
            seq += 1
            push(events, (now + jobs[j][6][i], seq, j, i, _FREE))
            advance(now, j, i + 1)
        elif kind == _FREE:
            phase = jobs[j][2][i]
            free[phase] += 1
            q = queues[phase]
            if free[phase] > 0 and q:
                free[phase] -= 1
                _, t_req, _, jq, iq = pop(q)
                start(now, jq, iq, t_req)
        else:
            # SimPy frees the station when the order releases it and the order moves on at once: its next
            # request (the same phase again, e.g. a rework pass) competes with the queue by priority.
            phase = jobs[j][2][i]
            free[phase] += 1
            advance(now, j, i + 1)
            q = queues[phase]
            if free[phase] > 0 and q:
                free[phase] -= 1
                _, t_req, _, jq, iq = pop(q)
                start(now, jq, iq, t_req)
    return finish, busy, wait_sum, wait_n, steps


BACKENDS = {"heap": _heap_loop, "simpy": _simpy_loop}


def _job_steps(sim_input: SimInput, scenario: Scenario, o: SimOrder, uniforms: list[float], priority) -> tuple:
    """The order's steps with their delays, touch times and priorities (rework passes inserted), fixed before the run."""
    route, delays, durations, prio, holds = [], [], [], [], []
    for i, phase in enumerate(o.route):
        hold = max(1.0, sim_input.station_hold.get(phase, 1.0))
        u = uniforms[_UNIFORMS_PER_STEP * i: _UNIFORMS_PER_STEP * (i + 1)]
        coef = _coef(scenario, phase, o.family, o.product_id)
        in_service = i == 0 and o.in_service_elapsed is not None
        if in_service:
            d = _sample(_distribution(sim_input, o.family, phase, residual=True), u[0], coef, o.in_service_elapsed)
            g = 0.0
        else:
            d = _sample(_distribution(sim_input, o.family, phase), u[0], coef)
            waited = o.waiting_elapsed if i == 0 else None
            g = _sample(_gap_distribution(sim_input, o.family, phase, residual=waited is not None), u[1], 1.0, waited)
        route.append(phase)
        delays.append(g)
        durations.append(d)
        holds.append(d * (hold - 1.0) if d > 0 else 0.0)
        prio.append(-math.inf if in_service else priority(o, d))
        p_rework = min(MAX_REWORK_PROBABILITY, sim_input.rework_probability.get(phase, 0.0))
        if p_rework > 0 and u[2] < p_rework:
            rd = _sample(sim_input.rework_durations_phase.get(phase) or _distribution(sim_input, o.family, phase),
                         u[3], coef)
            rg = sim_input.rework_gaps_phase.get(phase)
            route.append(phase)
            delays.append(_sample(rg, u[4]) if rg else 0.0)
            durations.append(rd)
            holds.append(rd * (hold - 1.0) if rd > 0 else 0.0)
            prio.append(priority(o, rd))
    return (o.key, o.arrival_day, tuple(route), delays, durations, prio, holds)


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
    calendars = {p: calendar_for(sim_input, p) for p in phases_used}
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

    # Steps in service at t = 0 keep their station: they start first and jump every queue.
    in_service_first = sorted(wip, key=lambda o: o.in_service_elapsed is None)
    jobs = [_job_steps(sim_input, scenario, o, u_wip[o.key], priority) for o in in_service_first]
    jobs += [_job_steps(sim_input, scenario, o, u_new[o.key], priority) for o in arrivals]
    overdue = sum(1 for o, job in zip(in_service_first, jobs, strict=False)
                  if o.in_service_elapsed is not None and job[4] and job[4][0] <= 0)
    finish, busy, wait_sum, wait_n, steps = BACKENDS[backend](jobs, servers, calendars, horizon, ShopLoad(sim_input))

    weeks = max(1, math.ceil(horizon / 7.0))
    weekly = [0] * weeks
    for t in finish.values():
        weekly[min(int(t // 7.0), weeks - 1)] += 1
    wip_remaining = [finish[o.key] for o in wip if o.key in finish]
    new_lead = [finish[o.key] - o.arrival_day for o in arrivals if o.key in finish]
    lead_finished = [finish[o.key] - o.created_day for o in (*wip, *arrivals) if o.key in finish]
    flow = [finish[o.key] - o.arrival_day for o in (*wip, *arrivals) if o.key in finish]
    utilisation = {p: busy[p] / (servers[p] * horizon) for p in phases_used} if horizon > 0 else {}
    queue_wait = {p: (wait_sum[p] / wait_n[p]) if wait_n[p] else 0.0 for p in phases_used}
    bottleneck = max(phases_used, key=lambda p: (utilisation[p], wait_sum[p], -p)) if phases_used else None
    total = len(wip) + len(arrivals)
    return {
        "kpis": {
            "orders_in": {"wip": len(wip), "arrivals": len(arrivals)},
            "orders_stalled": sim_input.stalled_orders,
            "orders_overdue_at_start": overdue,
            "orders_finished": len(finish),
            "orders_unfinished": total - len(finish),
            "orders_finished_wip": len(wip_remaining),
            "orders_finished_arrivals": len(new_lead),
            "throughput_per_week": weekly,
            "mean_throughput_per_week": _r(len(finish) / (horizon / 7.0)) if horizon else None,
            "mean_remaining_lead_time_days": _r(sum(wip_remaining) / len(wip_remaining)) if wip_remaining else None,
            "p90_remaining_lead_time_days": _r(percentile(wip_remaining, 0.9)),
            "mean_lead_time_arrivals_days": _r(sum(new_lead) / len(new_lead)) if new_lead else None,
            "median_lead_time_finished_days": _r(percentile(lead_finished, 0.5)),
            "mean_lead_time_finished_days": _r(sum(lead_finished) / len(lead_finished)) if lead_finished else None,
            "mean_flow_time_days": _r(sum(flow) / len(flow)) if flow else None,
            "wip_at_horizon_end": total - len(finish),
            "mean_queue_wait_days": {str(p): _r(queue_wait[p]) for p in phases_used},
            "mean_queue_wait_days_overall": _r(sum(wait_sum.values()) / max(1, sum(wait_n.values()))),
            "utilisation": {str(p): _r(utilisation[p]) for p in phases_used},
            "bottleneck_phase_id": bottleneck,
            "servers": {str(p): servers[p] for p in phases_used},
        },
        "finish_days": finish,
        "lead_times_finished": sorted(_r(x) for x in lead_finished),
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
