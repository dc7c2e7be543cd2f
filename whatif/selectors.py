"""Reads for the what-if engine: the WIP, routes, capacities and duration samples at an as-of moment."""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import connection

from orders.choices import OrderState
from orders.selectors import active_orders_at, open_orders_at, risk_scores
from prodplan.cache import versioned_cache
from prodplan.stats import percentile
from whatif.engine import ArrivalMix, SimInput, SimOrder, WeekCalendar
from whatif.models import WhatIfBacktest, WhatIfRun

logger = logging.getLogger(__name__)

CAPACITY_WINDOW_DAYS = 365  # a whole season: the spring peak is where a constraint shows its capacity
CAPACITY_WEEK_PERCENTILE = 0.9
# Throughput-limited phases (CAPACITY_RULE): the start rate measured while the queue held at least
# max(SATURATION_MIN_QUEUE, SATURATION_QUEUE_PER_STATION x stations) orders, against the rate with a shorter queue.
SATURATION_MIN_QUEUE = 3
SATURATION_QUEUE_PER_STATION = 2
SATURATION_MIN_OPEN_DAYS = 7.0  # open working days with that long a queue, at least
SATURATION_MIN_STARTS = 20  # starts with a long queue and with a short one, at least each
SATURATION_FLAT_RATIO = 1.25  # flat: the long-queue start rate at most this times the short-queue one
DURATION_WINDOW_DAYS = 42  # backtested (whatif_backtest, 6 dates): 30, 42, 56 and 90 days; 42 gave the smallest lead-time error
ROUTE_WINDOW_DAYS = 180
CALENDAR_WINDOW_DAYS = 365
CALENDAR_MIN_SHARE = 1 / 3  # an hour (a day) is open when it holds at least a third of a uniform share of starts
CALENDAR_MIN_PHASE_STARTS = 150  # a phase with fewer starts in the window uses the factory's calendar
CALENDAR_MIN_STARTS = 500  # fewer starts in the window: no calendar is learnt (always open)
MIN_FAMILY_PHASE_SAMPLES = 5
MIN_REWORK_SAMPLES = 5
MIN_REWORK_FIRST_PASSES = 30  # a phase with fewer first passes in the window takes the all-phase rework rate
DAY = 86400.0
WEEK = 7 * DAY
LISBON = "Europe/Lisbon"
# hour of the week (Monday 00:00 = 0) of a local wall-clock epoch: 1970-01-01 was a Thursday
_EPOCH_HOUR_OF_WEEK = 72


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def phase_names() -> dict[int, str]:
    return dict(_rows("SELECT id, name FROM orders_phase", {}))


def _service_spans(*, as_of: datetime, window_days: int) -> list[tuple]:
    """(phase id, start, end or None) epochs of the order phases in service at some moment of the window.

    Expected plan: the partitions of event times after the window start (pruned) plus the still-open
    phases that started before it (partial index on is_open)."""
    start = as_of - timedelta(days=window_days)
    return _rows(
        """
        SELECT phase_id, extract(epoch FROM started_at)::float8,
               CASE WHEN ended_at <= %(as_of)s THEN extract(epoch FROM ended_at)::float8 END
        FROM orders_orderphase
        WHERE event_time > %(start)s AND phase_id IS NOT NULL AND started_at IS NOT NULL
          AND started_at <= %(as_of)s
        UNION ALL
        SELECT phase_id, extract(epoch FROM started_at)::float8, NULL
        FROM orders_orderphase
        WHERE is_open AND event_time <= %(start)s AND phase_id IS NOT NULL
        """,
        {"as_of": as_of, "start": start},
    )


class ServiceLog:
    """The phases in service over a window, per phase: sorted starts and ends (epochs), for "how many at t"."""

    def __init__(self, spans: list[tuple], as_of: datetime):
        self.as_of = as_of.timestamp()
        starts: dict[int, list[float]] = defaultdict(list)
        ends: dict[int, list[float]] = defaultdict(list)
        for phase, s, e in spans:
            starts[phase].append(float(s))
            ends[phase].append(float(e) if e is not None else float("inf"))  # still open at as-of
        self.starts = {p: sorted(v) for p, v in starts.items()}
        self.ends = {p: sorted(v) for p, v in ends.items()}
        self.spans = spans

    def in_service(self, phase: int, t: float) -> int:
        s, e = self.starts.get(phase), self.ends.get(phase)
        if not s:
            return 0
        return bisect_left(s, t) - bisect_right(e, t)  # a span starting at t is not in service before t


def _queue_and_starts(*, as_of: datetime, window_days: int) -> list[tuple]:
    """(phase id, ready, start (local wall-clock epochs), touch days or None, ready, start (epochs)) of the first
    passes started in the window that were ready (the previous phase's end, or the order's creation) by their start.

    Expected plan: the phases of orders created since the window start less a margin, hash-joined to orders, one
    window sort per order for the previous end and the pass number (as step_samples)."""
    start = as_of - timedelta(days=window_days)
    return _rows(
        f"""
        WITH steps AS (
            SELECT op.phase_id, op.started_at, op.ended_at,
                   coalesce(lag(op.ended_at) OVER w, mo.created_at) AS ready_at,
                   op.is_rework OR row_number() OVER (PARTITION BY op.order_id, op.phase_id
                                                      ORDER BY op.sequence, op.started_at, op.id) > 1 AS rework
            FROM orders_orderphase op
            JOIN orders_manufacturingorder mo ON mo.id = op.order_id
            WHERE mo.created_at > %(created_after)s AND mo.created_at <= %(as_of)s
              AND op.started_at IS NOT NULL AND op.started_at <= %(as_of)s AND op.phase_id IS NOT NULL
            WINDOW w AS (PARTITION BY op.order_id ORDER BY op.sequence, op.started_at, op.id)
        )
        SELECT phase_id, extract(epoch FROM ready_at AT TIME ZONE '{LISBON}')::float8,
               extract(epoch FROM started_at AT TIME ZONE '{LISBON}')::float8,
               CASE WHEN ended_at <= %(as_of)s AND ended_at >= started_at
                    THEN extract(epoch FROM ended_at - started_at)::float8 / 86400.0 END,
               extract(epoch FROM ready_at)::float8, extract(epoch FROM started_at)::float8
        FROM steps WHERE NOT rework AND started_at > %(start)s AND ready_at <= started_at
        """,  # noqa: S608 - a constant
        {"as_of": as_of, "start": start, "created_after": start - timedelta(days=CAPACITY_READY_MARGIN_DAYS)},
    )


CAPACITY_READY_MARGIN_DAYS = 120  # orders created up to this long before the window may start a phase in it


def _local_epoch(moment: datetime) -> float:
    """Lisbon wall-clock time as an epoch (the calendars' clock)."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(LISBON)).replace(tzinfo=UTC).timestamp()


def saturation(rows: list[tuple], *, stations: dict[int, int], calendar: dict, window_start_local: float) -> dict:
    """Per phase, its start rate with a long queue and with a short one (CAPACITY_RULE), in open working days of
    the phase's calendar.

    rows: (phase, ready, start, touch) as _queue_and_starts gives them. The queue before a phase at t = the
    orders ready for it and not started by t (rows ready before the window count from its start). A start is
    counted at the queue length just before it (itself included when it waited; a start with no wait counts at
    the others' queue). Long queue: at least max(SATURATION_MIN_QUEUE, SATURATION_QUEUE_PER_STATION x stations)."""
    by_phase: dict[int, list[tuple]] = defaultdict(list)
    for phase, ready, start, touch, *_utc in rows:
        by_phase[phase].append((max(float(ready), window_start_local), float(start), touch))
    out = {}
    for phase, steps in by_phase.items():
        cal = WeekCalendar(calendar.get("phases", {}).get(phase, calendar.get("default")), _EPOCH_HOUR_OF_WEEK)
        long_queue = max(SATURATION_MIN_QUEUE, SATURATION_QUEUE_PER_STATION * stations.get(phase, 1))
        events = []  # (time, kind): kind 0 = a waiting order starts, 1 = an order starts at once, 2 = one is ready
        for ready, start, _touch in steps:
            if start > ready:
                events += [(ready, 2), (start, 0)]
            else:
                events.append((start, 1))
        events.sort()
        open_days = {"short": 0.0, "long": 0.0}
        starts = {"short": 0, "long": 0}
        waiting, last = 0, window_start_local
        for t, kind in events:
            if waiting and t > last:
                open_days["long" if waiting >= long_queue else "short"] += cal.open_between(last / DAY, t / DAY)
            last = max(last, t)
            if kind == 2:
                waiting += 1
                continue
            if waiting:
                starts["long" if waiting >= long_queue else "short"] += 1
            waiting -= kind == 0
        touch = [x for _r, _s, x in steps if x is not None]
        rate = {k: (starts[k] / open_days[k] if open_days[k] > 0 else None) for k in starts}
        flat = (open_days["long"] >= SATURATION_MIN_OPEN_DAYS and min(starts.values()) >= SATURATION_MIN_STARTS
                and rate["short"] is not None and rate["long"] <= SATURATION_FLAT_RATIO * rate["short"])
        out[phase] = {"long_queue": long_queue, "open_days": open_days, "starts": starts, "rate": rate,
                      "flat": flat, "mean_touch": sum(touch) / len(touch) if touch else None}
    return out


def capacity_by_phase(*, as_of: datetime, window_days: int = CAPACITY_WINDOW_DAYS,
                      log: ServiceLog | None = None, calendar: dict | None = None,
                      queue_rows: list[tuple] | None = None) -> dict[int, dict]:
    """Stations per phase: the simultaneous work it sustains in its busy weeks, unless its start rate shows a
    lower limit (CAPACITY_RULE).

    For each whole week of the window, the phase's time in service (order phases started and not yet
    ended, clipped to the week and to as-of) over the week's length is its weekly mean concurrency
    (throughput x touch time, Little's law); stations = the smallest whole number that holds the p90 of those
    weeks (ceil), at least 1. Also
    returned: the peak of instantaneous concurrency (start/end sweep) and the mean.

    Throughput-limited: when the phase's start rate with a long queue (saturation()) is flat (at most
    SATURATION_FLAT_RATIO times its rate with a short queue, over at least SATURATION_MIN_OPEN_DAYS open days and
    SATURATION_MIN_STARTS starts each) and lower than stations / mean touch time, the phase could not start work
    faster than that rate however much waited: its stations are the fewest that reach the rate at the mean touch
    time (ceil(rate x touch), at least 1), each taking an order every stations / rate days (station_cycle_days;
    the engine keeps the station that long, the order leaves at its touch time). Two queries (_service_spans,
    _queue_and_starts) plus the calendar's unless given."""
    log = log or ServiceLog(_service_spans(as_of=as_of, window_days=window_days), as_of)
    calendar = calendar if calendar is not None else working_calendar(as_of=as_of)
    t1 = as_of.timestamp()
    n_weeks = max(1, int(window_days * DAY // WEEK))
    t0 = t1 - n_weeks * WEEK
    busy: dict[int, list[float]] = defaultdict(lambda: [0.0] * n_weeks)
    for phase, s, e in log.spans:
        s, e = max(float(s), t0), min(float(e) if e is not None else t1, t1)
        if e <= s:
            continue
        weeks = busy[phase]
        w = int((s - t0) // WEEK)
        while s < e and w < n_weeks:
            edge = t0 + (w + 1) * WEEK
            weeks[w] += min(e, edge) - s
            s, w = edge, w + 1
    out = {}
    for phase, weeks in busy.items():
        load = [b / WEEK for b in weeks]
        p90 = percentile(load, CAPACITY_WEEK_PERCENTILE)
        events = sorted([(x, 1) for x in log.starts[phase] if x <= t1] + [(x, -1) for x in log.ends[phase] if x <= t1])
        current = peak = 0
        for _, step in events:
            current += step
            peak = max(peak, current)
        out[phase] = {"servers": max(1, math.ceil(p90 - 1e-9)), "p90_weekly_concurrent": round(p90, 3),
                      "max_weekly_concurrent": round(max(load), 3), "mean_concurrent": round(sum(load) / n_weeks, 3),
                      "max_concurrent": peak, "in_service_now": log.in_service(phase, t1)}
    if queue_rows is None:
        queue_rows = _queue_and_starts(as_of=as_of, window_days=window_days)
    sat = saturation(queue_rows,
                     stations={p: c["servers"] for p, c in out.items()}, calendar=calendar,
                     window_start_local=_local_epoch(as_of - timedelta(days=window_days)))
    for phase, c in out.items():
        s = sat.get(phase)
        c["concurrency_servers"] = c["servers"]
        c["rule"] = "concurrency"
        c["station_cycle_days"] = None
        if s is None:
            continue
        c["saturation"] = {"long_queue": s["long_queue"],
                           "open_days_long_queue": round(s["open_days"]["long"], 2),
                           "open_days_short_queue": round(s["open_days"]["short"], 2),
                           "starts_long_queue": s["starts"]["long"], "starts_short_queue": s["starts"]["short"],
                           "start_rate_long_queue": _round(s["rate"]["long"], 3),
                           "start_rate_short_queue": _round(s["rate"]["short"], 3),
                           "flat": s["flat"], "mean_touch_days": _round(s["mean_touch"], 4)}
        touch, rate = s["mean_touch"], s["rate"]["long"]
        if not s["flat"] or not touch or not rate or rate >= c["servers"] / touch:
            continue
        stations = max(1, math.ceil(rate * touch - 1e-9))
        c.update({"servers": stations, "rule": "throughput", "station_cycle_days": round(stations / rate, 4)})
    for c in out.values():
        cycle = c["station_cycle_days"]
        c["per_station_rate_per_day"] = round(1 / cycle, 3) if cycle else None
    return out


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


LOAD_WINDOW_DAYS = 14.0  # the shop's load at a moment: station starts per day over the two weeks before it
LOAD_BINS = 5
LOAD_MIN_WAITS = 500  # fewer waits measured in the year: no load dependence (elasticity 0)
LOAD_MIN_PHASE_WAITS = 30
LOAD_MAX_ELASTICITY = 2.0
LOAD_MIN_PHASE_SLOPE_WAITS = 100


def _log_slope(samples: list[tuple[float, float]]) -> tuple[float, list]:
    """(wait ratio, load) samples: the least-squares slope of log ratio on log load over LOAD_BINS equal bins by
    load, clamped to [0, LOAD_MAX_ELASTICITY] (0 with fewer than 3 bins), and the bins' (load, ratio) means."""
    samples = sorted(samples, key=lambda x: x[1])
    n = len(samples)
    points = []
    for k in range(LOAD_BINS):
        part = samples[k * n // LOAD_BINS:(k + 1) * n // LOAD_BINS]
        if not part:
            continue
        load = sum(x for _, x in part) / len(part)
        ratio = sum(r for r, _ in part) / len(part)
        if load > 0 and ratio > 0:
            points.append((load, ratio))
    if len(points) < 3:
        return 0.0, points
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx > 0 else 0.0
    return round(min(LOAD_MAX_ELASTICITY, max(0.0, slope)), 4), points


def station_starts(log: ServiceLog) -> list[float]:
    """Sorted epochs of the order phases started in the service log's window that took a station (touch time > 0,
    or still in service)."""
    return sorted(float(s) for _p, s, e in log.spans if e is None or float(e) > float(s))


def load_at(starts: list[float], t: float) -> float:
    """Station starts per day over the LOAD_WINDOW_DAYS before epoch t."""
    return (bisect_left(starts, t) - bisect_left(starts, t - LOAD_WINDOW_DAYS * DAY)) / LOAD_WINDOW_DAYS


def delay_load_elasticity(rows: list[tuple], starts: list[float], *, skip: set[int]) -> dict:
    """How the wait before a phase grows with the shop's load (DELAY_LOAD_RULE): the slope of log(mean wait / the
    phase's mean wait) on log(mean load) over LOAD_BINS equal bins of the waits sorted by the load at their ready
    moment, from the year's waits (rows as _queue_and_starts gives them) of the phases not in `skip` (the
    throughput-limited ones: their waits are their own queue), clamped to [0, LOAD_MAX_ELASTICITY]: pooled over the
    phases ("elasticity") and per phase with at least LOAD_MIN_PHASE_SLOPE_WAITS waits ("by_phase")."""
    by_phase: dict[int, list[tuple[float, float]]] = defaultdict(list)
    t_min = starts[0] + LOAD_WINDOW_DAYS * DAY if starts else math.inf  # a whole trailing window of history
    for phase, _rl, _sl, _touch, ready, start in rows:
        if phase in skip or ready < t_min:
            continue
        by_phase[phase].append(((start - ready) / DAY, load_at(starts, ready)))
    samples, per_phase = [], {}
    for phase, values in by_phase.items():
        mean = sum(w for w, _ in values) / len(values)
        if len(values) >= LOAD_MIN_PHASE_WAITS and mean > 0:
            normalised = [(w / mean, load) for w, load in values]
            samples += normalised
            if len(values) >= LOAD_MIN_PHASE_SLOPE_WAITS:
                per_phase[phase] = _log_slope(normalised)[0]
    out = {"elasticity": 0.0, "waits": len(samples), "bins": [], "by_phase": {}}
    if len(samples) < LOAD_MIN_WAITS:
        return out
    slope, points = _log_slope(samples)
    out.update({"elasticity": slope, "by_phase": per_phase,
                "bins": [{"load_per_day": round(x, 2), "wait_over_phase_mean": round(y, 3)} for x, y in points]})
    return out


DELAY_LOAD_RULE = (f"the shop's load at a moment = station starts per day over the {LOAD_WINDOW_DAYS:g} days before "
                   "it; the non-capacity delay before a phase is scaled in the run by (load now / the mean load at the "
                   "ready moments of the delays sampled) ** b, b = the slope of log(mean wait / the phase's mean wait) "
                   f"on log(mean load) over {LOAD_BINS} equal bins of the waits of the {CAPACITY_WINDOW_DAYS} days "
                   "before as-of sorted by the load when they began: the phase's own with at least "
                   f"{LOAD_MIN_PHASE_SLOPE_WAITS} waits, else pooled over the phases with at least "
                   f"{LOAD_MIN_PHASE_WAITS} (throughput-limited phases left out; fewer than {LOAD_MIN_WAITS} waits in "
                   f"all: b = 0), within [0, {LOAD_MAX_ELASTICITY:g}]; the factor within [0.25, 4]")


CAPACITY_RULE = (f"stations = ceil(p{int(CAPACITY_WEEK_PERCENTILE * 100)} over the whole weeks of the "
                 f"{CAPACITY_WINDOW_DAYS} days before as-of of the phase's weekly mean concurrency (time in service "
                 "over the week's length: throughput x touch time), at least 1: the work the phase sustains in its "
                 "busy weeks; the instantaneous peak is shown beside it. Unless the phase is throughput-limited: "
                 "its start rate (starts per open working day of its calendar) while at least "
                 f"max({SATURATION_MIN_QUEUE}, {SATURATION_QUEUE_PER_STATION} x stations) orders waited for it (ready: "
                 "the previous phase ended) is flat (at most "
                 f"{SATURATION_FLAT_RATIO} x its rate with a shorter queue; at least {SATURATION_MIN_OPEN_DAYS:g} "
                 f"open days and {SATURATION_MIN_STARTS} starts each) and below stations / mean touch time: it "
                 "could not start work faster however much waited, so its stations = ceil(that rate x mean touch "
                 "time), at least 1, each taking an order every stations / rate days (the order leaves at its touch "
                 "time; the station is free only at the end of that cycle). One station more or less adds or removes "
                 "one such cycle")


def _open_hours(counts: Counter, keys: range, share: float) -> set:
    total = sum(counts.values())
    return {k for k in keys if total and counts.get(k, 0) / total >= share / len(keys)}


def working_calendar(*, as_of: datetime, window_days: int = CALENDAR_WINDOW_DAYS) -> dict:
    """The working calendar learnt from phase starts (CALENDAR_RULE): the factory's and each busy phase's.

    Returns {"default": 168 booleans, "phases": {phase: 168 booleans}, "days": [...], "hours": [...],
    "starts": n}. One query; expected plan: the partitions of the window (pruned), grouped by phase,
    local day of week and hour."""
    rows = _rows(
        f"""
        SELECT phase_id, extract(isodow FROM started_at AT TIME ZONE '{LISBON}')::int,
               extract(hour FROM started_at AT TIME ZONE '{LISBON}')::int, count(*)
        FROM orders_orderphase
        WHERE event_time > %(start)s AND started_at > %(start)s AND started_at <= %(as_of)s AND phase_id IS NOT NULL
        GROUP BY 1, 2, 3
        """,  # noqa: S608 - a constant
        {"as_of": as_of, "start": as_of - timedelta(days=window_days)},
    )
    by_phase_day: dict[int, Counter] = defaultdict(Counter)
    by_phase_hour: dict[int, Counter] = defaultdict(Counter)
    days_all, hours_all = Counter(), Counter()
    for phase, dow, hour, n in rows:
        by_phase_day[phase][dow] += n
        by_phase_hour[phase][hour] += n
        days_all[dow] += n
        hours_all[hour] += n

    def grid(days: Counter, hours: Counter) -> tuple[tuple[bool, ...], list[int], list[int]]:
        open_days = sorted(_open_hours(days, range(1, 8), CALENDAR_MIN_SHARE))
        open_hours = sorted(_open_hours(hours, range(24), CALENDAR_MIN_SHARE))
        cells = tuple((d + 1) in open_days and h in open_hours for d in range(7) for h in range(24))
        return cells, open_days, open_hours

    if sum(days_all.values()) < CALENDAR_MIN_STARTS:
        return {"default": None, "phases": {}, "days": list(range(1, 8)), "hours": list(range(24)),
                "phase_calendars": {}, "starts": sum(days_all.values())}
    default, days, hours = grid(days_all, hours_all)
    phases, described = {}, {}
    for phase, counts in by_phase_day.items():
        if sum(counts.values()) < CALENDAR_MIN_PHASE_STARTS:
            continue
        cells, p_days, p_hours = grid(counts, by_phase_hour[phase])
        if cells != default:
            phases[phase] = cells
            described[phase] = {"days": p_days, "hours": p_hours}
    return {"default": default if any(default) else None, "phases": phases, "days": days, "hours": hours,
            "phase_calendars": described, "starts": sum(days_all.values())}


CALENDAR_RULE = (f"a day of the week (an hour of the day) is open when it holds at least "
                 f"{CALENDAR_MIN_SHARE:.2f} of a uniform share of the phase starts of the {CALENDAR_WINDOW_DAYS} days "
                 f"before as-of (Lisbon time; with fewer than {CALENDAR_MIN_STARTS} starts, always open); open hours are the open hours of the open days; a phase with at least "
                 f"{CALENDAR_MIN_PHASE_STARTS} starts gets its own calendar when it differs, the others the factory's")


def hour_of_week(moment: datetime) -> float:
    """Hours since Monday 00:00 Lisbon time."""
    from zoneinfo import ZoneInfo

    local = moment.astimezone(ZoneInfo(LISBON))
    return local.weekday() * 24 + local.hour + local.minute / 60 + local.second / 3600


def _rework_probability(first_passes: Counter, rework_passes: Counter) -> dict[int, float]:
    """Rework passes / first passes per phase; phases with few first passes take the all-phase rate."""
    overall = sum(rework_passes.values()) / max(1, sum(first_passes.values()))
    out = {}
    for phase, n in first_passes.items():
        rate = rework_passes[phase] / n if n >= MIN_REWORK_FIRST_PASSES else overall
        if rate > 0:
            out[phase] = round(rate, 4)
    return out


def step_samples(*, as_of: datetime, window_days: int | None = None, capacity: dict[int, int] | None = None,
                 log: ServiceLog | None = None, calendar: dict | None = None,
                 cycles: dict[int, float] | None = None) -> dict:
    """Touch times, non-capacity delays and rework of the order phases started in the window (days).

    touch time = end - start, for phases ended by as-of (first passes and rework passes apart). Delay
    before a phase = the open working time (its calendar) from the moment the order was ready (the previous
    phase's end, or the order's creation) to the start, kept only when fewer of the phase's stations than
    `capacity` were in service at that moment and no other order was ready for it and not started (a station
    was free and nobody was ahead: the wait was not queueing for it). A throughput-limited phase (`cycles`: its
    station cycle in days, CAPACITY_RULE) counts a station taken for one cycle after each start.
    Rework: a pass of a phase the order had already passed (or flagged as return); probability = rework
    passes / first passes. By (family, phase) (>= MIN_FAMILY_PHASE_SAMPLES), by phase, and all. One query;
    expected plan: the phases of orders created since the window start less a margin, hash-joined to
    orders and products, one window sort per order for the previous end and the pass number."""
    window_days = window_days or DURATION_WINDOW_DAYS
    start = as_of - timedelta(days=window_days)
    rows = _rows(
        f"""
        WITH steps AS (
            SELECT coalesce(p.family, 'UNKNOWN') AS family, op.phase_id, op.started_at, op.ended_at,
                   coalesce(lag(op.ended_at) OVER w, mo.created_at) AS ready_at,
                   op.is_rework OR row_number() OVER (PARTITION BY op.order_id, op.phase_id
                                                      ORDER BY op.sequence, op.started_at, op.id) > 1 AS rework
            FROM orders_orderphase op
            JOIN orders_manufacturingorder mo ON mo.id = op.order_id
            LEFT JOIN orders_product p ON p.id = mo.product_id
            WHERE mo.created_at > %(created_after)s AND mo.created_at <= %(as_of)s
              AND op.started_at IS NOT NULL AND op.started_at <= %(as_of)s AND op.phase_id IS NOT NULL
            WINDOW w AS (PARTITION BY op.order_id ORDER BY op.sequence, op.started_at, op.id)
        )
        SELECT family, phase_id, rework,
               CASE WHEN ended_at <= %(as_of)s AND ended_at >= started_at
                    THEN extract(epoch FROM ended_at - started_at)::float8 / 86400.0 END,
               CASE WHEN ready_at <= started_at THEN extract(epoch FROM ready_at)::float8 END,
               extract(epoch FROM ready_at AT TIME ZONE '{LISBON}')::float8,
               extract(epoch FROM started_at AT TIME ZONE '{LISBON}')::float8
        FROM steps WHERE started_at > %(start)s
        """,  # noqa: S608 - a constant
        {"as_of": as_of, "start": start, "created_after": start - timedelta(days=window_days)},
    )
    capacity = capacity or {}
    calendar = calendar or {"default": None, "phases": {}}
    calendars: dict[int, WeekCalendar] = {}
    touch: dict[tuple[str, int], list[float]] = defaultdict(list)
    delay: dict[tuple[str, int], list[float]] = defaultdict(list)
    rework_touch: dict[int, list[float]] = defaultdict(list)
    rework_delay: dict[int, list[float]] = defaultdict(list)
    first_passes, rework_passes = Counter(), Counter()
    congested = measured = 0
    shop_starts = station_starts(log) if log is not None else []
    kept_loads: list[float] = []
    # orders ready for a phase and not started yet, per phase: sorted ready and start moments (epochs)
    readies: dict[int, list[float]] = defaultdict(list)
    started: dict[int, list[float]] = defaultdict(list)
    for _f, phase, rework, _d, ready_epoch, ready_local, start_local in rows:
        if ready_epoch is not None and not rework:
            readies[phase].append(ready_epoch)
            started[phase].append(ready_epoch + (start_local - ready_local))
    for phase in readies:
        readies[phase].sort()
        started[phase].sort()

    def waiting_ahead(phase: int, t: float) -> int:
        return bisect_left(readies[phase], t) - bisect_right(started[phase], t)

    cycles = cycles or {}

    def busy_at(phase: int, t: float) -> int:
        """Stations taken at t: in service, or for a throughput-limited phase started less than a cycle before."""
        if phase not in cycles or log is None:
            return log.in_service(phase, t) if log is not None else 0
        starts = log.starts.get(phase, [])
        return bisect_left(starts, t) - bisect_right(starts, t - cycles[phase] * DAY)

    for family, phase, rework, duration, ready_epoch, ready_local, start_local in rows:
        if phase not in calendars:
            calendars[phase] = WeekCalendar(calendar["phases"].get(phase, calendar["default"]), _EPOCH_HOUR_OF_WEEK)
        open_wait = None
        if ready_local is not None and ready_epoch is not None and start_local >= ready_local:
            open_wait = calendars[phase].open_between(ready_local / DAY, start_local / DAY)
        if rework:
            rework_passes[phase] += 1
            if duration is not None:
                rework_touch[phase].append(duration)
            if open_wait is not None:
                rework_delay[phase].append(open_wait)
            continue
        first_passes[phase] += 1
        if duration is not None:
            touch[(family, phase)].append(duration)
        if open_wait is None:
            continue
        measured += 1
        # in service at the ready moment, this order's own span excluded (it had not started)
        if log is not None and (busy_at(phase, ready_epoch) >= capacity.get(phase, 1)
                                or waiting_ahead(phase, ready_epoch) > 0):
            congested += 1
            continue
        delay[(family, phase)].append(open_wait)
        if shop_starts:
            kept_loads.append(load_at(shop_starts, ready_epoch))

    def grouped(samples: dict[tuple[str, int], list[float]], min_phase: int = 1) -> tuple[dict, dict, tuple]:
        fp, by_p, everything = {}, defaultdict(list), []
        for (family, phase), values in samples.items():
            if len(values) >= MIN_FAMILY_PHASE_SAMPLES:
                fp[(family, phase)] = tuple(sorted(values))
            by_p[phase].extend(values)
            everything.extend(values)
        return fp, {k: tuple(sorted(v)) for k, v in by_p.items() if len(v) >= min_phase}, tuple(sorted(everything))

    return {
        "durations": grouped(touch),
        # a phase with few delays measured free of queueing (its waits were mostly behind others) takes all phases'
        "waits": grouped(delay, MIN_FAMILY_PHASE_SAMPLES),
        "rework_probability": _rework_probability(first_passes, rework_passes),
        "rework_durations": {p: tuple(sorted(v)) for p, v in rework_touch.items() if len(v) >= MIN_REWORK_SAMPLES},
        "rework_waits": {p: tuple(sorted(v)) for p, v in rework_delay.items() if len(v) >= MIN_REWORK_SAMPLES},
        "waits_measured": measured,
        "waits_congested": congested,
        "delay_reference_load": sum(kept_loads) / len(kept_loads) if kept_loads else 0.0,
    }


def standard_routes() -> dict[int, tuple[int, ...]]:
    """Each product's standard route (FasesStandardModelos) as phase ids in sequence order."""
    routes: dict[int, list[int]] = defaultdict(list)
    for product, phase in _rows("SELECT product_id, phase_id FROM orders_routestep ORDER BY product_id, sequence, id", {}):
        routes[product].append(phase)
    return {k: tuple(v) for k, v in routes.items()}


def observed_family_routes(*, as_of: datetime, window_days: int = ROUTE_WINDOW_DAYS) -> dict[str, tuple[int, ...]]:
    """Per family, the most common phase sequence (rework passes left out) of orders finished in the window.

    Key "*" holds the most common sequence over all families. One query; expected plan: a hash join of
    the finished orders (index on finished_at) with the order phases of partitions up to as-of."""
    rows = _rows(
        """
        WITH seqs AS (
            SELECT coalesce(p.family, 'UNKNOWN') AS family,
                   string_agg(op.phase_id::text, ',' ORDER BY op.sequence, op.started_at, op.id) AS route
            FROM orders_manufacturingorder mo
            LEFT JOIN orders_product p ON p.id = mo.product_id
            JOIN orders_orderphase op ON op.order_id = mo.id
            WHERE mo.finished_at > %(start)s AND mo.finished_at <= %(as_of)s
              AND op.event_time <= %(as_of)s AND NOT op.is_rework AND op.phase_id IS NOT NULL
            GROUP BY mo.id, 1
        )
        SELECT family, route, count(*) FROM seqs GROUP BY family, route
        """,
        {"as_of": as_of, "start": as_of - timedelta(days=window_days)},
    )
    by_family: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for family, route, n in rows:
        by_family[family][route] += n
        overall[route] += n

    def mode(counter: Counter) -> tuple[int, ...]:
        route, _ = min(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(int(x) for x in route.split(","))

    out = {family: mode(c) for family, c in by_family.items()}
    if overall:
        out["*"] = mode(overall)
    return out


# Family, phases reached by as_of (started or ended by then), and the order's own phase rows still ahead (first
# passes not started at as_of, after the furthest row reached, in sequence order) of the WIP orders, by id. A row
# started after as_of counts as "ahead" only when the export holds not-started rows (%(future_rows)s): in the
# "started phase rows only" shape such a row did not exist yet at as_of. Expected plan: the ids unnested, the
# orders by primary key, products hashed, the order phases of each order by orders_op_order_seq_idx.
_WIP_PROGRESS_SQL = """
WITH reached AS (
    SELECT w.id, coalesce(p.family, 'UNKNOWN') AS family,
           coalesce(array_agg(DISTINCT op.phase_id) FILTER (WHERE op.phase_id IS NOT NULL), '{}') AS phases,
           max(op.sequence) AS furthest
    FROM unnest(%(ids)s::bigint[]) AS w(id)
    JOIN orders_manufacturingorder mo ON mo.id = w.id
    LEFT JOIN orders_product p ON p.id = mo.product_id
    LEFT JOIN orders_orderphase op ON op.order_id = w.id AND op.phase_id IS NOT NULL
         AND (op.started_at <= %(as_of)s OR op.ended_at <= %(as_of)s)
    GROUP BY w.id, p.family
)
SELECT r.id, r.family, r.phases,
       coalesce((SELECT array_agg(op.phase_id ORDER BY op.sequence, op.id) FROM orders_orderphase op
                 WHERE op.order_id = r.id AND op.phase_id IS NOT NULL AND NOT op.is_rework
                   AND (r.furthest IS NULL OR op.sequence > r.furthest)
                   AND (op.started_at IS NULL OR (%(future_rows)s AND op.started_at > %(as_of)s))), '{}')
FROM reached r
"""


def export_holds_future_rows() -> bool:
    """Whether the export holds phase rows not started yet (else phase rows are created when work starts)."""
    return bool(_rows("SELECT EXISTS (SELECT 1 FROM orders_orderphase WHERE started_at IS NULL AND ended_at IS NULL "
                      "AND phase_id IS NOT NULL)", {})[0][0])


def wip_rows(*, as_of: datetime) -> list[dict]:
    """The WIP at as_of from the order state: the active orders (orders.selectors.active_orders_at: open,
    neither stalled nor abandoned), each with its state row (state, phase_id, since, placement_basis,
    created_at...) plus its family, the phases it reached by as_of ('reached') and its own phase rows still
    ahead ('ahead'); one query keyed by the ids."""
    states = active_orders_at(as_of=as_of)
    if not states:
        return []
    progress = {oid: (family, tuple(reached), tuple(ahead)) for oid, family, reached, ahead in
                _rows(_WIP_PROGRESS_SQL, {"ids": [r["order_id"] for r in states], "as_of": as_of,
                                          "future_rows": export_holds_future_rows()})}
    return [{**r, "family": progress[r["order_id"]][0], "reached": progress[r["order_id"]][1],
             "ahead": progress[r["order_id"]][2]} for r in states]


def own_remaining_route(ahead: tuple[int, ...], phase_id: int | None, in_service: bool) -> tuple[int, ...]:
    """The route from the order's own rows ahead: its position phase first (in service, or waiting before a
    phase that is not its next row), then the rows ahead from that phase on."""
    if phase_id is None:
        return tuple(ahead)
    if not in_service and phase_id in ahead:
        return tuple(ahead[ahead.index(phase_id):])
    return (phase_id, *ahead)


def remaining_route(route: tuple[int, ...], reached: tuple[int, ...], phase_id: int | None) -> tuple[int, ...]:
    """What is left of a route for an order at phase_id (its state's phase) having reached these phases.

    From the position phase onward: route[i:] for its first occurrence i at or after the furthest step
    reached; a position phase elsewhere (a rework, a phase off the route) goes first, then the steps after the
    furthest reached; no position phase: the steps after the furthest reached."""
    done = set(reached)
    pos = max((i for i, p in enumerate(route) if p in done), default=-1)
    if phase_id is None:
        return tuple(route[pos + 1:])
    at = next((i for i in range(max(pos, 0), len(route)) if route[i] == phase_id), None)
    if at is not None:
        return tuple(route[at:])
    return (phase_id, *route[pos + 1:])


def orders_created_between(*, start: datetime, end: datetime) -> list[tuple]:
    """(order id, product id, family, created day relative to start) of orders created in (start, end]."""
    return _rows(
        """
        SELECT mo.id, mo.product_id, coalesce(p.family, 'UNKNOWN'),
               extract(epoch FROM mo.created_at - %(start)s) / 86400.0
        FROM orders_manufacturingorder mo
        LEFT JOIN orders_product p ON p.id = mo.product_id
        WHERE mo.created_at > %(start)s AND mo.created_at <= %(end)s
        ORDER BY mo.created_at, mo.id
        """,
        {"start": start, "end": end},
    )


def weekly_completions(*, start: datetime, weeks: int) -> list[int]:
    """Orders really finished in each week after start (the backtest's ground truth)."""
    rows = _rows(
        """
        SELECT floor(extract(epoch FROM finished_at - %(start)s) / (7 * 86400.0))::int AS week, count(*)
        FROM orders_manufacturingorder
        WHERE finished_at > %(start)s AND finished_at <= %(end)s
        GROUP BY 1
        """,
        {"start": start, "end": start + timedelta(weeks=weeks)},
    )
    out = [0] * weeks
    for week, n in rows:
        out[min(week, weeks - 1)] += n
    return out


def order_outcomes(*, order_ids: list[int]) -> list[tuple]:
    """(order id, created_at, finished_at or None) of these orders (the backtest's ground truth), one query."""
    return _rows(
        """
        SELECT mo.id, mo.created_at, mo.finished_at
        FROM unnest(%(ids)s::bigint[]) AS w(id) JOIN orders_manufacturingorder mo ON mo.id = w.id
        ORDER BY mo.id
        """,
        {"ids": list(order_ids)},
    )


def trailing_flow(*, end: datetime, weeks: int) -> dict:
    """What the factory did in the weeks before `end`: weekly completions (oldest first), lead times (days) of the
    orders finished then, and the orders created then (the naive forecasts' inputs). One query."""
    start = end - timedelta(weeks=weeks)
    rows = _rows(
        """
        SELECT 'finished', floor(extract(epoch FROM finished_at - %(start)s) / (7 * 86400.0))::int,
               extract(epoch FROM finished_at - created_at)::float8 / 86400.0
        FROM orders_manufacturingorder WHERE finished_at > %(start)s AND finished_at <= %(end)s
        UNION ALL
        SELECT 'created', NULL, NULL FROM orders_manufacturingorder WHERE created_at > %(start)s AND created_at <= %(end)s
        """,
        {"start": start, "end": end},
    )
    weekly = [0] * weeks
    lead, created = [], 0
    for kind, week, days in rows:
        if kind == "created":
            created += 1
            continue
        weekly[min(max(week, 0), weeks - 1)] += 1
        if days is not None and days >= 0:
            lead.append(days)
    return {"weekly": weekly, "lead_times": sorted(lead), "created": created}


def risk_by_order(*, as_of: datetime) -> tuple[dict[int, float], str]:
    """Risk score per active order at as_of (the risk queue's, orders.selectors.risk_scores), with its basis."""
    return risk_scores(as_of=as_of), "orders.selectors.risk_scores"


def _route_for(product_id, family, routes, family_routes) -> tuple[tuple[int, ...], str]:
    if product_id in routes:
        return routes[product_id], "standard"
    if family in family_routes:
        return family_routes[family], "family_observed"
    return family_routes.get("*", ()), "global_observed"


def gather_sim_input(
    *, as_of: datetime, arrival_weeks: int = 8, real_arrivals_days: float | None = None, with_risk: bool = False,
) -> SimInput:
    """Everything the engine needs at as-of, in plain structures (one query per kind of data).

    real_arrivals_days: feed the orders really created in (as_of, as_of + days] instead of a
    synthetic stream (the backtest)."""
    phases = phase_names()
    log = ServiceLog(_service_spans(as_of=as_of, window_days=CAPACITY_WINDOW_DAYS), as_of)
    calendar = working_calendar(as_of=as_of)
    queue_rows = _queue_and_starts(as_of=as_of, window_days=CAPACITY_WINDOW_DAYS)
    capacity = capacity_by_phase(as_of=as_of, log=log, calendar=calendar, queue_rows=queue_rows)
    servers = {p: c["servers"] for p, c in capacity.items()}
    shop_starts = station_starts(log)
    load = delay_load_elasticity(queue_rows, shop_starts,
                                 skip={p for p, c in capacity.items() if c["rule"] == "throughput"})
    t_as_of = as_of.timestamp()
    recent_starts = tuple((t - t_as_of) / DAY for t in
                          shop_starts[bisect_right(shop_starts, t_as_of - LOAD_WINDOW_DAYS * DAY):] if t <= t_as_of)
    samples = step_samples(as_of=as_of, capacity=servers, log=log, calendar=calendar,
                           cycles={p: c["station_cycle_days"] for p, c in capacity.items() if c["station_cycle_days"]})
    fp, by_phase, everything = samples["durations"]
    station_hold = station_holds(capacity, by_phase)
    gap_fp, gap_phase, gap_all = samples["waits"]
    routes = standard_routes()
    family_routes = observed_family_routes(as_of=as_of)
    origin = hour_of_week(as_of)
    local_as_of = (hour_of_week(as_of) / 24.0)  # days since Monday 00:00 (local), for the calendars below

    def waited_open(phase: int | None, since: datetime | None) -> float | None:
        """Open working days of the phase's calendar between `since` and as-of."""
        if since is None:
            return None
        cal = WeekCalendar(calendar["phases"].get(phase, calendar["default"]), 0.0)
        elapsed = max(0.0, (as_of - since).total_seconds() / DAY)
        return cal.open_between(local_as_of - elapsed, local_as_of)

    orders: list[SimOrder] = []
    route_basis: Counter = Counter()
    placement: Counter = Counter()
    in_service = placed = undated = 0
    for r in wip_rows(as_of=as_of):
        oid, product_id, family = r["order_id"], r["product_id"], r["family"]
        serving = r["state"] == OrderState.IN_PROGRESS and r["phase_id"] is not None
        standard, basis = _route_for(product_id, family, routes, family_routes)
        if r["ahead"]:
            own = own_remaining_route(r["ahead"], r["phase_id"], serving)
            # rows still ahead, then whatever the standard route holds after them (an export may hold only some)
            tail = remaining_route(standard, (*r["reached"], *own), None)
            route, basis = (*own, *tail), "own_rows" if not tail else "own_rows_then_" + basis
        else:
            route = remaining_route(standard, r["reached"], r["phase_id"])
        route_basis[basis] += 1
        placement[r["placement_basis"]] += 1
        placed += r["phase_id"] is not None
        in_state = None if r["since"] is None else max(0.0, (as_of - r["since"]).total_seconds() / DAY)
        in_service += serving
        if r["created_at"] is None:
            undated += 1
        orders.append(SimOrder(
            key=f"wip:{oid}", order_id=oid, product_id=product_id, family=family, route=route,
            created_day=0.0 if r["created_at"] is None else (r["created_at"] - as_of).total_seconds() / DAY,
            in_service_elapsed=(in_state or 0.0) if serving else None,
            waiting_elapsed=None if serving else waited_open(route[0] if route else None, r["since"])))
    excluded = Counter(r["state"] for r in open_orders_at(as_of=as_of))  # cached: the rows wip_rows stands on

    risk_basis = None
    if with_risk:
        scores, risk_basis = risk_by_order(as_of=as_of)
        orders = [SimOrder(**{**o.__dict__, "risk": scores.get(o.order_id, 0.0)}) for o in orders]

    recent = orders_created_between(start=as_of - timedelta(weeks=arrival_weeks), end=as_of)
    mix = [ArrivalMix(product_id, family, _route_for(product_id, family, routes, family_routes)[0])
           for _, product_id, family, _ in recent]
    fixed = None
    if real_arrivals_days is not None:
        fixed = []
        for oid, product_id, family, day in orders_created_between(
                start=as_of, end=as_of + timedelta(days=real_arrivals_days)):
            route = _route_for(product_id, family, routes, family_routes)[0]
            fixed.append(SimOrder(key=f"new:{oid}", order_id=oid, product_id=product_id, family=family,
                                  route=route, created_day=float(day), arrival_day=max(float(day), 1e-9)))
    for route in [o.route for o in orders] + [m.route for m in mix]:
        for p in route:
            phases.setdefault(p, f"phase {p}")
    n = len(orders)
    delays_kept = samples["waits_measured"] - samples["waits_congested"]
    return SimInput(
        phases=phases,
        capacity=servers,
        durations_family_phase=fp,
        durations_phase=by_phase,
        durations_global=everything,
        orders=orders,
        arrival_rate_per_day=len(recent) / (7.0 * arrival_weeks) if arrival_weeks else 0.0,
        arrival_mix=mix,
        fixed_arrivals=fixed,
        gaps_family_phase=gap_fp,
        gaps_phase=gap_phase,
        gaps_global=gap_all,
        calendars=calendar["phases"],
        default_calendar=calendar["default"],
        calendar_origin_hour=origin,
        rework_probability=samples["rework_probability"],
        rework_durations_phase=samples["rework_durations"],
        rework_gaps_phase=samples["rework_waits"],
        stalled_orders=excluded[OrderState.STALLED],
        station_hold=station_hold,
        delay_load_elasticity=load["elasticity"],
        delay_load_elasticity_by_phase=load.get("by_phase", {}),
        delay_reference_load=samples["delay_reference_load"],
        recent_starts=recent_starts,
        load_window_days=LOAD_WINDOW_DAYS,
        meta={
            "as_of": as_of.isoformat(),
            "wip_orders": n,
            "wip_rule": "the active orders of the order state at as_of (orders.selectors.ORDER_STATE_RULE): open, "
                        "neither stalled nor abandoned; each starts at its state's phase, in service there "
                        "(in_progress, elapsed = as_of - since) or waiting before it (waited = the open working time "
                        "since then), and follows its own phase rows still ahead, else its product's standard route "
                        "(else its family's observed one) from that phase on",
            "wip_in_service": in_service,
            "wip_undated": undated,
            "stalled_orders_excluded": excluded[OrderState.STALLED],
            "abandoned_orders_excluded": excluded[OrderState.ABANDONED],
            "placement_basis": dict(placement),
            "route_basis": dict(route_basis),
            "progress_located_coverage": round(placed / n, 4) if n else None,
            "capacity": {str(p): c for p, c in sorted(capacity.items())},
            "capacity_rule": CAPACITY_RULE,
            "station_hold": {str(p): h for p, h in sorted(station_hold.items())},
            "delay_load": {**load, "by_phase": {str(p): b for p, b in sorted(load["by_phase"].items())},
                           "reference_load_per_day": round(samples["delay_reference_load"], 3),
                           "load_at_as_of_per_day": round(len(recent_starts) / LOAD_WINDOW_DAYS, 3)},
            "delay_load_rule": DELAY_LOAD_RULE,
            "calendar": {"days": calendar["days"], "hours": calendar["hours"],
                         "phase_calendars": {str(p): c for p, c in sorted(calendar["phase_calendars"].items())},
                         "starts": calendar["starts"]},
            "calendar_rule": CALENDAR_RULE,
            "duration_rule": f"touch times (end - start) of first passes started in the {DURATION_WINDOW_DAYS} days "
                             "before as-of and ended by then, "
                             f"by (family, phase) when >= {MIN_FAMILY_PHASE_SAMPLES} samples, else phase, else all",
            "duration_samples": len(everything),
            "wait_rule": "waits come out of capacity: an order queues for a station of the phase, which starts only "
                         "inside the working calendar. Before queueing it waits a non-capacity delay (transfer, "
                         "curing, paperwork): the open working time from ready to start observed before that phase "
                         f"in the {DURATION_WINDOW_DAYS} days before as-of when a station of it was free at the "
                         "ready moment and no other order was waiting for it (waits behind a full phase or behind other orders are "
                         "left out: the simulated queue makes them)",
            "wait_samples": len(gap_all),
            "wait_samples_left_out_as_queueing": samples["waits_congested"],
            "wait_samples_measured": samples["waits_measured"],
            "delay_share_kept": round(delays_kept / samples["waits_measured"], 4) if samples["waits_measured"] else None,
            "rework_rule": "probability that an order passes a phase once more = passes of a phase the order had "
                           "already passed (or flagged as returns) / first passes, started in the "
                           f"{DURATION_WINDOW_DAYS} days before as-of",
            "rework_probability": {str(p): v for p, v in sorted(samples["rework_probability"].items())},
            "arrival_rule": f"Poisson at the rate of orders created in the {arrival_weeks} weeks before as-of, "
                            "products drawn from those orders" if real_arrivals_days is None
                            else "the orders really created after the start date",
            "arrival_rate_per_week": round(len(recent) / arrival_weeks, 3) if arrival_weeks else 0.0,
            "risk_basis": risk_basis,
        },
    )


def station_holds(capacity: dict[int, dict], durations_phase: dict[int, tuple[float, ...]]) -> dict[int, float]:
    """Per throughput-limited phase, its station cycle over the mean of the touch times the engine draws (>= 1): so
    the simulated stations start work at the measured rate whatever the window of the touch-time samples."""
    out = {}
    for phase, c in capacity.items():
        cycle, touch = c.get("station_cycle_days"), durations_phase.get(phase)
        mean = sum(touch) / len(touch) if touch else 0.0
        if cycle and mean > 0 and cycle > mean:
            out[phase] = round(cycle / mean, 4)
    return out


@versioned_cache("whatif.sim_input")
def cached_sim_input(*, as_of: datetime, arrival_weeks: int = 8, with_risk: bool = False) -> SimInput:
    """gather_sim_input through the versioned cache: scenarios on the same data share one gathering."""
    return gather_sim_input(as_of=as_of, arrival_weeks=arrival_weeks, with_risk=with_risk)


def _hour_ranges(hours: list[int]) -> list[tuple[int, int]]:
    """Consecutive open hours as (first, end) pairs: [6..21] -> [(6, 22)]."""
    out: list[tuple[int, int]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + 1)
        else:
            out.append((h, h + 1))
    return out


@versioned_cache("whatif.station_overview", ignore=("names",))
def station_overview(*, as_of: datetime, names: dict[int, str] | None = None) -> dict:
    """What the what-if page shows before a run: each phase's current stations (CAPACITY_RULE) with the figures
    behind them, busiest first, and the working calendar (CALENDAR_RULE). Cached per as-of and data version;
    on a miss, two queries (service spans, calendar) plus the phase names unless given."""
    calendar = working_calendar(as_of=as_of)
    capacity = capacity_by_phase(as_of=as_of, calendar=calendar)
    known = names if names is not None else phase_names()
    rows = [{"phase_id": p, "name": known.get(p, str(p)), **c,
             "own_calendar": calendar["phase_calendars"].get(p)}
            for p, c in capacity.items()]
    rows.sort(key=lambda r: (-r["p90_weekly_concurrent"], r["phase_id"]))
    return {
        "phases": rows,
        "calendar": {"days": calendar["days"], "hours": calendar["hours"],
                     "hour_ranges": _hour_ranges(calendar["hours"]), "starts": calendar["starts"],
                     "always_open": calendar["default"] is None},
        "basis": "observed",
        "coverage": None,
        "capacity_rule": CAPACITY_RULE,
        "calendar_rule": CALENDAR_RULE,
    }


def latest_backtest():
    return WhatIfBacktest.objects.order_by("-created_at", "-id").first()


def run_list():
    """Runs newest first; outputs deferred but for the stations each simulation used (scenario_changes)."""
    from django.db.models.fields.json import KeyTransform

    return (WhatIfRun.objects.defer("outputs")
            .annotate(servers_before=KeyTransform("servers", KeyTransform("baseline", "outputs")),
                      servers_after=KeyTransform("servers", KeyTransform("scenario", "outputs")))
            .order_by("-created_at", "-id"))


MOVING_ORDERS = 10  # the comparison and the result list the orders whose finish moves most


def _fmt_number(value) -> str:
    from django.utils.formats import number_format

    if isinstance(value, float) and not value.is_integer():
        return number_format(round(value, 2))  # 0.8, 1.25: no trailing zeros
    return number_format(int(value)) if isinstance(value, int | float) else str(value)


def scenario_changes(run: WhatIfRun, names: dict[int, str]) -> list[str]:
    """What the run's scenario changed against the baseline, in words: the rule (when not FIFO), each phase's
    stations ("Preparação Molde Casco: 2 → 3 stations") and each duration multiplier; phases by name, never id.

    Stations before and after come from the run's outputs (the servers each simulation used); a run without
    outputs yet says what was asked."""
    from django.utils.translation import gettext as _

    from orders.choices import ProductFamily
    from whatif.choices import PriorityRule

    inputs = run.inputs or {}
    if "outputs" in run.get_deferred_fields():  # run_list(): only the servers were read
        outputs = {"baseline": {"servers": getattr(run, "servers_before", None)},
                   "scenario": {"servers": getattr(run, "servers_after", None)}}
    else:
        outputs = run.outputs or {}
    model_names = {int(k): v for k, v in ((outputs.get("model") or {}).get("phases") or {}).items()}

    def phase_name(phase_id) -> str:
        if phase_id is None:
            return _("every phase")
        return names.get(int(phase_id)) or model_names.get(int(phase_id)) or _("a phase no longer in the catalogue")

    changes = []
    before = (outputs.get("baseline") or {}).get("servers") or {}
    after = (outputs.get("scenario") or {}).get("servers") or {}
    for c in inputs.get("capacity_overrides") or []:
        key, name = str(c["phase_id"]), phase_name(c["phase_id"])
        target = after.get(key, c.get("servers"))
        if key in before and target is not None:
            changes.append(_("%(phase)s: %(before)s → %(after)s stations") % {
                "phase": name, "before": _fmt_number(before[key]), "after": _fmt_number(target)})
        elif c.get("servers") is not None:
            changes.append(_("%(phase)s: %(after)s stations") % {"phase": name, "after": _fmt_number(c["servers"])})
        else:
            changes.append(_("%(phase)s: stations × %(m)s") % {"phase": name, "m": _fmt_number(c["multiplier"])})
    families = dict(ProductFamily.choices)
    for c in inputs.get("coef_overrides") or []:
        family = families.get(c["family"], c["family"]) if c.get("family") else None
        if c.get("phase_id") is None:
            scope = family or phase_name(None)
        else:
            scope = f"{phase_name(c['phase_id'])} ({family})" if family else phase_name(c["phase_id"])
        changes.append(_("%(scope)s: durations × %(m)s") % {"scope": scope, "m": _fmt_number(c["multiplier"])})
    rule = inputs.get("priority_rule") or PriorityRule.FIFO
    if rule != PriorityRule.FIFO:
        label = PriorityRule(rule).label if rule in PriorityRule.values else rule
        changes.append(_("rule: %(rule)s") % {"rule": label})
    if not changes:
        changes.append(_("no change (the baseline itself)"))
    return changes


def moving_orders(run: WhatIfRun, limit: int = MOVING_ORDERS) -> list[dict]:
    """The orders whose finish moves most in the scenario (the engine's top_affected_orders, largest change
    first): order id, product, finish day in the baseline and in the scenario (None: not finished in the
    horizon) and the change in days (negative: earlier)."""
    rows = ((run.outputs or {}).get("top_affected_orders") or [])[:limit]
    return [{"order_id": r.get("order_id"), "product_id": r.get("product_id"),
             "baseline_finish_day": r.get("baseline_finish_day"), "scenario_finish_day": r.get("scenario_finish_day"),
             "change_days": r.get("change_days")} for r in rows]
