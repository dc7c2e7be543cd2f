"""The demo orders: arrivals with seasonality, routes with rework, a queueing walk through the shop, assignments, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ingestion import contract
from ingestion.demo.catalogue import Catalogue
from ingestion.demo.factory import (
    CORE_PHASES,
    CULPRIT_WEIGHT,
    DEFECTS,
    EVALUATION_WEIGHT,
    EXTRA_EVENT_PHASES,
    FAMILY_DEFECTS,
    FAMILY_SEVERITY_SHIFT,
    FAMILY_WORK,
    PHASE_TABLE,
    REWORK_WEIGHT,
)
from ingestion.demo.shape import (
    CAMPAIGN_SIGMA,
    FIRST_ORDER_ID,
    FIRST_ORDER_PHASE_ID,
    GATE_HEADROOM,
    GATE_PHASE,
    LEGACY_ORDER_PHASE_IDS,
    MAX_SHOP_UTILISATION,
    MINUTES_PER_DAY,
    MOULD_HOURS,
    NEVER,
    RUSH_ORDER_RATE,
    RUSH_WAIT_SHARE,
    SEASON_AMPLITUDE,
    SHOP_UTILISATION,
    SHOP_WINDOW_DAYS,
    SHORTAGE_MEAN_DAYS,
    SHORTAGE_RATE,
    STUCK_ORDER_RATE,
    TEAM_SIZE_MEAN,
    Sizes,
    planted_count,
)


def _intensity(rng, first_day: int, last_day: int) -> np.ndarray:
    """Expected orders per day (relative): season x weekday x four-week campaigns; no trend."""
    days = np.arange(first_day, last_day + 1)
    dates = days.astype("datetime64[D]")
    day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    season = 1.0 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (day_of_year - 105) / 365.25)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    weekday_weight = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.08, 0.02])[weekday]
    # Four-week campaigns (dealer orders, team orders) make the arrivals wander around the season.
    blocks = (days - first_day) // 28
    campaign = rng.lognormal(0.0, CAMPAIGN_SIGMA, blocks.max() + 1)[blocks]
    return season * weekday_weight * campaign


def _creation_times(rng, n: int, intensity: np.ndarray, start_min: int, as_of_min: int) -> np.ndarray:
    first_day = start_min // MINUTES_PER_DAY
    days = np.arange(first_day, as_of_min // MINUTES_PER_DAY + 1)
    p = intensity[: len(days)]
    day = rng.choice(days, size=n, p=p / p.sum())
    hour_weight = np.array([0, 0, 0, 0, 0, 0, 0, 2, 6, 8, 8, 7, 3, 5, 7, 7, 6, 4, 2, 1, 0, 0, 0, 0], dtype=float)
    hour = rng.choice(24, size=n, p=hour_weight / hour_weight.sum())
    minutes = day * MINUTES_PER_DAY + hour * 60 + rng.integers(0, 60, n)
    return np.sort(np.clip(minutes, start_min, as_of_min))


@dataclass(frozen=True)
class GateChange:
    """The capacity knob: from the start of `from_day` (days since 1970-01-01) the gate's capacity is `factor`
    times its usual one. Nothing before that day depends on it, so two workbooks of one seed that differ only
    in the knob hold the same events before it."""

    factor: float
    from_day: int


@dataclass(frozen=True)
class Shop:
    """The load model, a deterministic function of time (so the same at every scale).

    The gate is a fluid FIFO queue fed by the arrival intensity: backlog[d + 1] = max(0, backlog[d] +
    arrivals[d] - capacity[d]), in days of mean arrivals. An order reaching the gate at t leaves it when
    the capacity worked since t has cleared the backlog found at t. The phases' queueing factor is
    rho / (1 - rho), rho proportional to the gate's releases over the last SHOP_WINDOW_DAYS.
    """

    edges: np.ndarray  # day boundaries (minutes)
    backlog: np.ndarray  # at each boundary
    worked: np.ndarray  # cumulative capacity at each boundary
    shop_factor: np.ndarray  # per day
    capacity_factor: np.ndarray | None = None  # per day, the knob's (None: the usual capacity every day)

    @staticmethod
    def _flow(arrivals: np.ndarray, capacity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gate's backlog at each day boundary and its releases averaged over the trailing window."""
        backlog = np.zeros(len(arrivals) + 1)
        for d in range(len(arrivals)):
            backlog[d + 1] = max(0.0, backlog[d] + arrivals[d] - capacity[d])
        released = backlog[:-1] + arrivals - backlog[1:]
        kernel = np.ones(SHOP_WINDOW_DAYS) / SHOP_WINDOW_DAYS
        recent = np.convolve(np.concatenate([np.full(SHOP_WINDOW_DAYS - 1, released[:7].mean()), released]), kernel,
                             mode="valid")
        return backlog, recent

    @classmethod
    def build(cls, intensity: np.ndarray, first_day: int, days_of_history: int,
              gate_change: GateChange | None = None) -> Shop:
        days = first_day + np.arange(len(intensity))
        arrivals = intensity / intensity[:days_of_history].mean()
        capacity = np.full(len(days), GATE_HEADROOM)  # moulds set every day of the week
        backlog, recent = cls._flow(arrivals, capacity)
        # The shop's load is relative to the usual releases, whatever the knob does later: the days before
        # the change keep their load factor.
        usual = recent[:days_of_history].mean()
        factor = None
        if gate_change is not None:
            factor = np.where(days >= gate_change.from_day, gate_change.factor, 1.0)
            capacity = capacity * factor
            backlog, recent = cls._flow(arrivals, capacity)
        rho = np.clip(SHOP_UTILISATION * recent / usual, 0.3, MAX_SHOP_UTILISATION)
        return cls(
            edges=(first_day + np.arange(len(days) + 1)) * MINUTES_PER_DAY,
            backlog=backlog,
            worked=np.concatenate([[0.0], np.cumsum(capacity)]),
            shop_factor=rho / (1.0 - rho),
            capacity_factor=factor,
        )

    def _day(self, t: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(t) - self.edges[0]) // MINUTES_PER_DAY, 0, len(self.shop_factor) - 1)

    def factor(self, t: np.ndarray) -> np.ndarray:
        return self.shop_factor[self._day(t)]

    def gate_spacing_units(self, due_in_turn: np.ndarray) -> np.ndarray:
        """Cumulative gaps (in units of the usual gap) between the moulds handed out in turn: 1 per order
        at the usual capacity, 1 / factor once the knob applies (the first order: 0)."""
        if self.capacity_factor is None:
            return np.arange(len(due_in_turn), dtype=float)
        gaps = 1.0 / self.capacity_factor[self._day(due_in_turn)]
        return np.concatenate([[0.0], np.cumsum(gaps[1:])])

    def gate_release(self, t: np.ndarray, share: np.ndarray | float = 1.0) -> np.ndarray:
        """When an order reaching the gate at t leaves it (share < 1: it jumps part of the backlog)."""
        t = np.clip(t, self.edges[0], self.edges[-1])
        due = np.interp(t, self.edges, self.worked) + share * np.interp(t, self.edges, self.backlog)
        return np.maximum(t, np.rint(np.interp(due, self.worked, self.edges)).astype(np.int64))


def _products_for_orders(rng, cat: Catalogue, create: np.ndarray) -> np.ndarray:
    """Draw by popularity among products on sale at creation; every product gets at least one order."""
    n = len(create)
    p = cat.popularity / cat.popularity.sum()
    product = np.full(n, -1, dtype=np.int64)
    pending = np.arange(n)
    for _ in range(200):
        if not len(pending):
            break
        draw = rng.choice(len(p), size=len(pending), p=p)
        ok = (cat.active_from[draw] <= create[pending]) & (create[pending] <= cat.active_to[draw])
        product[pending[ok]] = draw[ok]
        pending = pending[~ok]
    product[pending] = rng.choice(len(p), size=len(pending), p=p)
    # Exact distinct match rate: each catalogue and each unknown product is ordered at least once.
    counts = np.bincount(product, minlength=len(p))
    for missing in np.flatnonzero(counts == 0):
        inside = (cat.active_from[missing] <= create) & (create <= cat.active_to[missing]) & (counts[product] > 1)
        candidates = np.flatnonzero(inside)
        if not len(candidates):
            candidates = np.flatnonzero(counts[product] > 1)
        chosen = candidates[rng.integers(len(candidates))]
        counts[product[chosen]] -= 1
        product[chosen] = missing
        counts[missing] += 1
    return product


def _order_rows(rng, cat: Catalogue, product: np.ndarray, total_rows: int) -> dict[str, np.ndarray]:
    """Each order's rows: its product's route, plus rework passes and quality events to reach total_rows."""
    n_orders = len(product)
    lens = cat.route_len[product]
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    order = np.repeat(np.arange(n_orders), lens)
    pos = np.arange(lens.sum()) - offsets[order]
    phase = cat.route_phase[product[order], pos]
    coef = cat.route_coef[product[order], pos]
    coef_x = cat.route_coef_x[product[order], pos]
    sub = np.zeros(len(order), dtype=np.int64)
    rework = np.zeros(len(order), dtype=bool)

    extra = total_rows - len(order)
    if extra < 0:
        # More route steps than rows wanted (tiny scales): orders skipped some optional steps.
        core = np.isin(np.array(cat.phase_name, dtype=object)[phase], CORE_PHASES)
        drop = rng.choice(np.flatnonzero(~core), size=-extra, replace=False)
        keep = np.ones(len(order), dtype=bool)
        keep[drop] = False
        order, pos, phase, coef, coef_x, sub, rework = (a[keep] for a in (order, pos, phase, coef, coef_x, sub, rework))
    elif extra > 0:
        family = cat.product_family[product]
        w = FAMILY_DEFECTS[family] * cat.defect_factor[product]
        e_order = rng.choice(n_orders, size=extra, p=w / w.sum())
        is_rework = rng.random(extra) < 0.6
        rw_weight = np.array([REWORK_WEIGHT.get(k, 0.0) for k in cat.phase_kind])
        rw_weight[~cat.production | cat.automatic] = 0.0
        e_pos = np.zeros(extra, dtype=np.int64)
        pending = np.flatnonzero(is_rework)
        for _ in range(500):
            if not len(pending):
                break
            cand = rng.integers(0, lens[e_order[pending]])
            ph = cat.route_phase[product[e_order[pending]], cand]
            ok = rng.random(len(pending)) < rw_weight[ph] / rw_weight.max()
            e_pos[pending[ok]] = cand[ok]
            pending = pending[~ok]
        events = np.flatnonzero(~is_rework)
        e_pos[events] = rng.integers(1, lens[e_order[events]])
        event_names = list(EXTRA_EVENT_PHASES)
        event_idx = np.array([cat.phase_name.index(name) for name in event_names])
        event_w = np.array(list(EXTRA_EVENT_PHASES.values()))
        e_phase = cat.route_phase[product[e_order], e_pos]
        e_phase[events] = rng.choice(event_idx, size=len(events), p=event_w / event_w.sum())
        e_coef = np.where(is_rework, np.round(cat.route_coef[product[e_order], e_pos] * 0.5, 3), 0.0)
        e_coef_x = np.where(is_rework, cat.route_coef_x[product[e_order], e_pos], 0.0)
        order = np.concatenate([order, e_order])
        pos = np.concatenate([pos, e_pos])
        phase = np.concatenate([phase, e_phase])
        coef = np.concatenate([coef, e_coef])
        coef_x = np.concatenate([coef_x, e_coef_x])
        sub = np.concatenate([sub, 1 + rng.integers(0, 1_000_000, extra)])
        rework = np.concatenate([rework, is_rework])
    sort = np.lexsort((sub, pos, order))
    order, pos, phase, coef, coef_x, rework = (a[sort] for a in (order, pos, phase, coef, coef_x, rework))
    lens = np.bincount(order, minlength=n_orders)
    return {
        "order": order,
        "sequence": (pos + 1) * 10,
        "phase": phase,
        "coef": coef,
        "coef_x": coef_x,
        "rework": rework,
        "lens": lens,
        "offsets": np.concatenate([[0], np.cumsum(lens)[:-1]]),
    }


def _shift_adjust(t: np.ndarray, allow_night: np.ndarray, night_draw: np.ndarray, weekend_draw: np.ndarray):
    """Push most starts out of the night shift and the weekend: the shop runs mostly 06:00-22:00 on weekdays."""
    minute = t % MINUTES_PER_DAY
    night = (minute < 360) | (minute >= 1320)
    push = night & ~allow_night & (night_draw < 0.8)
    t = np.where(push, (t // MINUTES_PER_DAY + (minute >= 1320)) * MINUTES_PER_DAY + 360, t)
    day = t // MINUTES_PER_DAY
    weekday = (day + 3) % 7
    push = (weekday >= 5) & (weekend_draw < 0.92)
    return np.where(push, (day + 7 - weekday) * MINUTES_PER_DAY + 360, t)


def _walk(rng, cat: Catalogue, rows: dict, product: np.ndarray, create: np.ndarray, shop: Shop) -> None:
    """Start and end of every row: queue then work (phase- and family-dependent).

    Steps before the gate step queue at their base time; the order then waits at the gate (the backlog it finds there, FIFO; rush orders jump most of it; a few orders wait
    for material first), and every later step queues at its base
    time times the shop's load factor. Lead time therefore depends on the product (route, work) and
    on the load the order meets, through the same mapping in every year.
    """
    phase = rows["phase"]
    n_rows = len(phase)
    family = cat.product_family[product]
    order_of_row = rows["order"]
    lens, offsets = rows["lens"], rows["offsets"]
    queue_draw = rng.gamma(4.0, 0.25, n_rows)
    work_draw = np.where(cat.automatic[phase], rng.lognormal(0.0, 0.1, n_rows), rng.lognormal(0.0, 0.35, n_rows))
    booked_as_event = rng.random(n_rows) < 0.025  # some production steps are only booked as start = end
    night_draw, weekend_draw = rng.random(n_rows), rng.random(n_rows)
    release = rng.integers(5, 90, len(create))
    rush = np.where(rng.random(len(create)) < RUSH_ORDER_RATE, RUSH_WAIT_SHARE, 1.0)
    shortage = np.where(rng.random(len(create)) < SHORTAGE_RATE,
                        np.rint(rng.exponential(SHORTAGE_MEAN_DAYS * MINUTES_PER_DAY, len(create))), 0).astype(np.int64)
    fam = family[order_of_row]
    work_h = np.where(
        cat.automatic[phase],
        cat.hours[phase] * FAMILY_WORK[fam] ** 0.3 * work_draw,
        cat.hours[phase] * FAMILY_WORK[fam] * cat.complexity[product[order_of_row]] * work_draw,
    )
    work_h = np.where(rows["rework"], 0.6 * work_h, work_h)
    work_min = np.rint(np.where(booked_as_event, 0.0, work_h) * 60).astype(np.int64)
    queue_base = cat.queue_hours[phase] * queue_draw * np.where(rows["rework"], 0.3, 1.0)  # rework jumps the queue

    # The gate step occupies a mould for most of a day, so its concurrency shows the gate's capacity.
    gate_phase = cat.phase_name.index(GATE_PHASE)
    position = np.arange(n_rows) - offsets[order_of_row]
    gate_position = np.minimum.reduceat(np.where(phase == gate_phase, position, NEVER), offsets)
    at_gate_row = position == gate_position[order_of_row]
    mould_min = np.rint(MOULD_HOURS * 60 * rng.lognormal(0.0, 0.25, n_rows)).astype(np.int64)
    work_min = np.where(at_gate_row, mould_min, work_min)
    start = np.empty(n_rows, dtype=np.int64)
    end = np.empty(n_rows, dtype=np.int64)

    def place(idx: np.ndarray, ready: np.ndarray, factor: np.ndarray | float) -> None:
        begin = ready + np.rint(queue_base[idx] * factor * 60).astype(np.int64)
        start[idx] = _shift_adjust(begin, cat.automatic[phase[idx]], night_draw[idx], weekend_draw[idx])
        end[idx] = start[idx] + work_min[idx]

    n_orders = len(create)
    gate_ready = create + release
    for j in range(1, int(gate_position.max()) + 1):  # the steps before the gate, at their base queue
        orders = np.flatnonzero(gate_position >= j)
        idx = offsets[orders] + j
        place(idx - 1, gate_ready[orders], 1.0)
        gate_ready[orders] = end[idx - 1]
    # The gate: the fluid backlog sets when each order's turn comes; one mould at a time is handed out
    # (FIFO, at least `spacing` apart), so a burst of orders spreads over the gate's capacity.
    gate_idx = offsets + gate_position
    due = shop.gate_release(gate_ready + shortage, rush)
    due = due + np.rint(queue_base[gate_idx] * shop.factor(due) * 60).astype(np.int64)
    history_days = (create.max() - create.min()) / MINUTES_PER_DAY + 1
    spacing = min(MINUTES_PER_DAY * history_days / (GATE_HEADROOM * n_orders), 120.0)
    turn = np.argsort(due, kind="stable")
    steps = np.rint(spacing * shop.gate_spacing_units(due[turn])).astype(np.int64)
    start[gate_idx[turn]] = np.maximum.accumulate(due[turn] - steps) + steps  # the mould is taken when it frees
    end[gate_idx] = start[gate_idx] + work_min[gate_idx]
    for j in range(1, int(lens.max())):  # after the gate, queues grow with the shop's load
        orders = np.flatnonzero((lens > j) & (gate_position < j))
        idx = offsets[orders] + j
        ready = end[idx - 1]
        place(idx, ready, shop.factor(ready))
    rows["start"], rows["end"] = start, end


def _orders(rng, cat: Catalogue, sizes: Sizes, start_min: int, as_of_min: int,
            gate_change: GateChange | None = None) -> tuple[dict, dict]:
    n = sizes.rows[contract.ORDERS.name] - planted_count(contract.ORDERS.name)
    n_rows = sizes.rows[contract.ORDER_PHASES.name] - planted_count(contract.ORDER_PHASES.name)
    first_day, last_day = start_min // MINUTES_PER_DAY, as_of_min // MINUTES_PER_DAY
    # The load model runs past the snapshot, for the orders still in the shop at the as-of date.
    intensity = _intensity(rng, first_day, last_day + 365)
    create = _creation_times(rng, n, intensity, start_min, as_of_min)
    shop = Shop.build(intensity, first_day, last_day - first_day + 1, gate_change)
    product = _products_for_orders(rng, cat, create)
    rows = _order_rows(rng, cat, product, n_rows)
    _walk(rng, cat, rows, product, create, shop)

    lens, offsets = rows["lens"], rows["offsets"]
    # Abandoned orders: from some step on nothing ever happens.
    old = np.flatnonzero(create < as_of_min - 60 * MINUTES_PER_DAY)
    stuck = rng.choice(old, size=min(len(old), int(round(STUCK_ORDER_RATE * n))), replace=False)
    for o in stuck:
        k = int(rng.integers(1, lens[o]))
        rows["start"][offsets[o] + k : offsets[o] + lens[o]] = NEVER
        rows["end"][offsets[o] + k : offsets[o] + lens[o]] = NEVER

    started = rows["start"] <= as_of_min
    ended = started & (rows["end"] <= as_of_min)
    rows["started"], rows["ended"] = started, ended
    position = np.arange(len(ended)) - offsets[rows["order"]]
    first_open = np.minimum.reduceat(np.where(ended, NEVER, position), offsets)
    finished = first_open == NEVER
    last = offsets + lens - 1
    current_row = np.where(finished, last, offsets + np.minimum(first_open, lens - 1))
    finish = np.where(finished, rows["end"][last], -1)

    transport = np.full(n, -1, dtype=np.int64)
    shipped = finished & (rng.random(n) < 0.62)
    ship_day = (finish // MINUTES_PER_DAY + rng.integers(1, 9, n)) * MINUTES_PER_DAY
    shipped &= ship_day <= as_of_min
    transport[shipped] = ship_day[shipped]

    ids = FIRST_ORDER_ID + np.cumsum(1 + (rng.random(n) < 0.03) * rng.integers(1, 5, n))
    orders = {
        "ids": ids.astype(np.int64),
        "create": create,
        "finish": finish,
        "product": product,
        "current_phase": rows["phase"][current_row],
        "transport": transport,
        "factor": shop.factor,
    }
    rows["ids"] = FIRST_ORDER_PHASE_ID + np.cumsum(1 + (rng.random(len(ended)) < 0.02) * rng.integers(1, 4, len(ended)))
    return orders, rows


def _assignments(rng, cat: Catalogue, emp: dict, rows: dict, n_rows: int) -> dict[str, np.ndarray]:
    """Teams per order phase; only 32.3% of the distinct phase ids they name exist in the export."""
    n_emp = len(emp["ids"])
    distinct = max(1, round(n_rows / TEAM_SIZE_MEAN))
    matched_target = round(contract.REAL_MATCH_RATES[(contract.ASSIGNMENTS.name, "FuncionarioFaseOf_FaseOfId")] * distinct)
    eligible = np.flatnonzero(rows["started"] & cat.production[rows["phase"]])
    matched = np.sort(rng.choice(eligible, size=min(matched_target, len(eligible)), replace=False))
    n_legacy = distinct - len(matched)
    low, high = LEGACY_ORDER_PHASE_IDS
    legacy_ids = low + rng.choice(high - low, size=n_legacy, replace=False)

    cap = min(n_emp, 12)
    team = 1 + np.bincount(rng.integers(0, distinct, n_rows - distinct), minlength=distinct)
    while team.max() > cap:  # never more people in a team than exist (or than a phase needs)
        over = team > cap
        surplus = int((team[over] - cap).sum())
        team[over] = cap
        np.add.at(team, rng.choice(np.flatnonzero(team < cap), size=surplus), 1)
    fase_ids = np.concatenate([rows["ids"][matched], legacy_ids])
    phase = np.concatenate([rows["phase"][matched], rng.choice(len(PHASE_TABLE), size=n_legacy)])
    order = np.argsort(fase_ids, kind="stable")
    fase_ids, phase = fase_ids[order], phase[order]

    # People come from the pool skilled in the phase when it is big enough, else from everyone.
    by_phase = np.argsort(emp["primary"], kind="stable")
    pool_start = np.searchsorted(emp["primary"][by_phase], np.arange(len(PHASE_TABLE)))
    pool_size = np.bincount(emp["primary"], minlength=len(PHASE_TABLE))
    member = np.repeat(np.arange(distinct), team)
    slot = np.arange(len(member)) - np.repeat(np.cumsum(team) - team, team)
    use_pool = pool_size[phase] >= team
    size = np.where(use_pool, pool_size[phase], n_emp)
    base = rng.integers(0, np.maximum(size, 1))
    within = (base[member] + slot) % size[member]
    employee = np.where(use_pool[member], by_phase[np.minimum(pool_start[phase][member] + within, n_emp - 1)], within)
    leader = (slot == 0) & ((team[member] > 1) | (rng.random(len(member)) < 0.3))
    return {
        "fase_of_id": fase_ids[member],
        "employee": emp["ids"][employee],
        "leader": leader.astype(np.int64),
        "distinct": distinct,
        "matched": len(matched),
    }


def _errors(rng, cat: Catalogue, rows: dict, orders: dict, n_errors: int, culprit_filled: int) -> dict[str, Any]:
    """Defects found at evaluation phases, caused by an earlier production phase of the same order."""
    eval_weight = np.array([EVALUATION_WEIGHT.get(name, 0.0) for name in cat.phase_name])
    family = cat.product_family[orders["product"]]
    row_order = rows["order"]
    w = eval_weight[rows["phase"]] * rows["started"]
    # Rushed periods breed defects: the shop's load factor at the start of the evaluation.
    load = orders["factor"](np.where(rows["started"], rows["start"], 0))
    w = w * FAMILY_DEFECTS[family[row_order]] * cat.defect_factor[orders["product"][row_order]] * (0.6 + 0.3 * load)
    evaluation = np.sort(rng.choice(len(w), size=n_errors, p=w / w.sum()))

    culprit_weight = np.array([CULPRIT_WEIGHT.get(k, 0.0) for k in cat.phase_kind])
    culprit_weight[~cat.production] = 0.0
    first = rows["offsets"][row_order[evaluation]]
    culprit = evaluation.copy()
    pending = np.flatnonzero(evaluation > first)
    for _ in range(300):
        if not len(pending):
            break
        cand = rng.integers(first[pending], evaluation[pending])
        ok = rng.random(len(pending)) < culprit_weight[rows["phase"][cand]] / culprit_weight.max()
        culprit[pending[ok]] = cand[ok]
        pending = pending[~ok]

    kinds = cat.phase_kind[rows["phase"][culprit]]
    descriptions = np.empty(n_errors, dtype=object)
    severity = np.empty(n_errors, dtype=np.int64)
    shift = FAMILY_SEVERITY_SHIFT[family[row_order[evaluation]]]
    u = rng.random(n_errors)
    pick = rng.random(n_errors)
    for kind in np.unique(kinds):
        sel = np.flatnonzero(kinds == kind)
        options = DEFECTS.get(str(kind), DEFECTS["inspect"])
        choice = (pick[sel] * len(options)).astype(int)
        for k, (text, probs) in enumerate(options):
            hit = sel[choice == k]
            descriptions[hit] = text
            p1 = probs[0] - shift[hit]
            p2 = probs[1]
            severity[hit] = 1 + (u[hit] >= p1) + (u[hit] >= p1 + p2)
    filled = np.zeros(n_errors, dtype=bool)
    filled[rng.choice(n_errors, size=culprit_filled, replace=False)] = True
    return {
        "description": descriptions,
        "order_id": orders["ids"][row_order[evaluation]],
        "evaluation_phase": cat.phase_ids[rows["phase"][evaluation]],
        "severity": severity,
        "evaluation_row": rows["ids"][evaluation],
        "culprit_row": rows["ids"][culprit],
        "culprit_filled": filled,
    }
