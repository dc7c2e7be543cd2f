"""Independent re-statements of the orders rules over the stored rows (pandas / plain Python, no selector code).

Each function follows the documented rule (orders.selectors: ORDER_STATE_RULE, STALL_RULE, BOTTLENECK_RULE,
RISK_METHOD and lead_time_thresholds) with only what was known at the as-of time t: orders created by t,
phase starts and ends at or before t (an end after t is not known then: that phase is in progress).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pandas as pd
from django.conf import settings

from orders import selectors

DAY = 86400.0
STALL_PERCENTILE = 0.99
STALL_WINDOW_DAYS = selectors.STALL_WINDOW_DAYS
STALL_MIN_GAPS = 30
# Configuration of the ranking (window, lookback for the previous phase's end, minimum volume), not its logic.
FLOW_WINDOW_DAYS = selectors.BOTTLENECK_WINDOW_DAYS
FLOW_LOOKBACK_DAYS = selectors.FLOW_LOOKBACK_DAYS
MIN_QUEUE_EVENTS = selectors.BOTTLENECK_MIN_QUEUE_EVENTS
WAIT_DAYS = selectors.BOTTLENECK_WAIT_DAYS
ROUTE_STEPS = selectors.BOTTLENECK_ROUTE_STEPS
RECENT_WEIGHT = selectors.BOTTLENECK_RECENT_WEIGHT
ACTIVE = ("not_started", "waiting", "in_progress")


def value(x):
    """None for NaN / NaT / None, else the value itself."""
    return None if x is None or (not isinstance(x, (list, dict, str)) and pd.isna(x)) else x


def _quantile(series: pd.Series, q: float) -> float | None:
    return None if series.empty else float(series.quantile(q))


# --- lead-time thresholds ---------------------------------------------------------------------------------


def lead_thresholds(frames: dict, t: datetime) -> dict:
    """{"global", "family", "product"}: percentiles of the lead times (finished - created, >= 0) of the orders
    finished by t; "product" resolves every known product id: its own with >= MIN_HISTORY_FOR_PRODUCT_PERCENTILE
    orders, else its family's with that many, else global."""
    minimum = settings.MIN_HISTORY_FOR_PRODUCT_PERCENTILE
    orders = frames["orders"]
    families = dict(zip(frames["products"]["id"], frames["products"]["family"], strict=True))
    done = orders[orders["finished_at"].notna() & orders["created_at"].notna() & (orders["finished_at"] <= t)].copy()
    done["lead"] = (done["finished_at"] - done["created_at"]).dt.total_seconds() / DAY
    done = done[done["lead"] >= 0]
    done["family"] = done["product_id"].map(families)

    def stats(series: pd.Series, scope: str) -> dict:
        return {"scope": scope, "n": len(series), "p50": _quantile(series, 0.5), "p75": _quantile(series, 0.75),
                "p90": _quantile(series, 0.9), "mean": None if series.empty else float(series.mean()),
                "at_risk_days": _quantile(series, settings.ORDER_AT_RISK_PERCENTILE),
                "late_days": _quantile(series, settings.ORDER_LATE_PERCENTILE)}

    glob = stats(done["lead"], "global")
    family = {f: stats(g["lead"], "family") for f, g in done.dropna(subset=["family"]).groupby("family")}
    own = {int(pid): stats(g["lead"], "product") for pid, g in done.dropna(subset=["product_id"]).groupby("product_id")}
    product = {}
    for pid in {int(p) for p in orders["product_id"].dropna()} | {int(p) for p in families}:
        fam = family.get(families.get(pid))
        if pid in own and own[pid]["n"] >= minimum:
            product[pid] = own[pid]
        elif fam is not None and fam["n"] >= minimum:
            product[pid] = fam
        else:
            product[pid] = glob
    return {"global": glob, "family": family, "own": own, "product": product}


# --- phase rows as known at t ------------------------------------------------------------------------------


def known_phases(frames: dict, t: datetime) -> pd.DataFrame:
    """Phase rows (with a phase id) cut at t: start/end after t unknown; their event as known at t."""
    phases = frames["phases"]
    rows = phases[phases["phase_id"].notna()].copy()
    rows["start_k"] = rows["started_at"].where(rows["started_at"] <= t)
    rows["end_k"] = rows["ended_at"].where(rows["ended_at"] <= t)
    rows["event_k"] = rows["end_k"].fillna(rows["start_k"])
    return rows


# --- stall thresholds --------------------------------------------------------------------------------------


def _window_rows(frames: dict, t: datetime) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The phase rows whose known event lies in the STALL_WINDOW_DAYS before t, per order in start order, with
    the previous row's end and phase (for an order's first row: its creation / 'start' when created in the window)."""
    start = t - timedelta(days=STALL_WINDOW_DAYS)
    rows = known_phases(frames, t)
    rows = rows[rows["start_k"].notna() & (rows["event_k"] > start)]
    created = dict(zip(frames["orders"]["id"], frames["orders"]["created_at"], strict=True))
    rows = rows.sort_values(["order_id", "start_k", "sequence", "id"])
    first = rows.groupby("order_id").cumcount() == 0
    created_in_window = rows["order_id"].map(created).where(lambda c: c > start)
    previous_end = rows.groupby("order_id")["end_k"].shift().where(~first, created_in_window)
    previous_phase = rows.groupby("order_id")["phase_id"].shift().map(lambda p: None if pd.isna(p) else str(int(p)))
    previous_phase = previous_phase.where(~first, created_in_window.map(lambda c: None if pd.isna(c) else "start"))
    return rows, previous_end, previous_phase


def stall_gaps(frames: dict, t: datetime) -> pd.DataFrame:
    """Event-free gaps (phase_id, seconds) measured in the window: the wait before each row (its start minus the
    previous row's end, or the order's creation) and each known duration."""
    rows, previous, _ = _window_rows(frames, t)
    waits = pd.DataFrame({"phase_id": rows["phase_id"], "gap": (rows["start_k"] - previous).dt.total_seconds()})
    waits = waits[previous.notna() & (previous <= rows["start_k"])]
    timed = rows[rows["end_k"].notna()]
    durations = pd.DataFrame({"phase_id": timed["phase_id"], "gap": (timed["end_k"] - timed["start_k"]).dt.total_seconds()})
    return pd.concat([waits, durations], ignore_index=True)


def next_phases(frames: dict, t: datetime) -> dict[str, int]:
    """After each phase (as text; 'start' for an order's first), the phase that most often came next in the
    window (ties: the lowest id)."""
    rows, _, previous = _window_rows(frames, t)
    pairs = Counter((prev, int(ph)) for prev, ph in zip(previous, rows["phase_id"], strict=True) if value(prev) is not None)
    out: dict[str, tuple[int, int]] = {}
    for (prev, ph), n in pairs.items():
        best = out.get(prev)
        if best is None or (n, -ph) > (best[1], -best[0]):
            out[prev] = (ph, n)
    return {prev: ph for prev, (ph, _) in out.items()}


def stall_thresholds(frames: dict, t: datetime) -> dict:
    """Learnt at the first instant of t's month (Lisbon), from what was known then."""
    from zoneinfo import ZoneInfo

    t = t.astimezone(ZoneInfo("Europe/Lisbon")).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    floor = settings.ORDER_STALLED_FLOOR_DAYS * DAY
    gaps = stall_gaps(frames, t)
    default = max(floor, gaps["gap"].quantile(STALL_PERCENTILE)) if len(gaps) else floor
    per_phase = {int(pid): max(floor, g["gap"].quantile(STALL_PERCENTILE))
                 for pid, g in gaps.groupby("phase_id") if len(g) >= STALL_MIN_GAPS}
    return {"default_seconds": default, "phase_seconds": per_phase, "gaps_measured": len(gaps),
            "next_phase": next_phases(frames, t)}


# --- the order state ---------------------------------------------------------------------------------------


def order_states(frames: dict, t: datetime, *, snapshot_at: datetime | None = None,
                 abandoned: frozenset | set = frozenset()) -> dict[int, dict]:
    """order id -> its state at t by ORDER_STATE_RULE (orders created by t, or undated)."""
    lead = lead_thresholds(frames, t)
    stall = stall_thresholds(frames, t)
    routes: dict[int, list] = defaultdict(list)
    for step in frames["routes"].sort_values(["sequence", "phase_id"]).itertuples():
        routes[int(step.product_id)].append((int(step.sequence), int(step.phase_id)))
    by_order: dict[int, list] = defaultdict(list)
    for row in known_phases(frames, t).to_dict("records"):
        by_order[int(row["order_id"])].append(row)
    out = {}
    for order in frames["orders"].to_dict("records"):
        created, finished = value(order["created_at"]), value(order["finished_at"])
        if created is not None and created > t:
            continue
        oid = int(order["id"])
        pid = value(order["product_id"])
        pid = None if pid is None else int(pid)
        threshold = lead["product"].get(pid, lead["global"])
        age = None if created is None else (t - created).total_seconds() / DAY
        base = {"order_id": oid, "product_id": pid, "threshold_scope": threshold["scope"],
                "late_days": threshold["late_days"], "at_risk_days": threshold["at_risk_days"], "p75_days": threshold["p75"]}
        if finished is not None and finished <= t:
            out[oid] = {**base, "state": "finished", "flow_state": "finished", "phase_id": None, "placement_basis": "none",
                        "since": finished, "status": "DONE", "age_days": None, "reworks": 0, "last_event_at": None}
            continue
        rows = by_order.get(oid, [])
        touched = [r for r in rows if value(r["start_k"]) is not None or value(r["end_k"]) is not None]
        active = [r for r in rows if value(r["start_k"]) is not None and value(r["end_k"]) is None]
        reached = max((r["sequence"] for r in touched if value(r["sequence"]) is not None), default=None)
        phase, basis = None, "unknown"
        if active:
            latest = max(active, key=lambda r: (r["start_k"], -math.inf if value(r["sequence"]) is None else r["sequence"], r["id"]))
            phase, basis = int(latest["phase_id"]), "phase_in_progress"
        else:
            touched_ids = {r["id"] for r in touched}
            ahead = [r for r in rows if r["id"] not in touched_ids
                     and (reached is None or value(r["sequence"]) is None or r["sequence"] > reached)]
            if ahead:
                first = min(ahead, key=lambda r: (value(r["sequence"]) is None, value(r["sequence"]) or 0, r["id"]))
                phase, basis = int(first["phase_id"]), "next_phase_row"
            else:
                steps = routes.get(pid, [])
                done_ids = {int(r["phase_id"]) for r in touched}
                furthest = max((seq for seq, ph in steps if ph in done_ids), default=-math.inf)
                following = [ph for seq, ph in steps if seq > furthest]
                done_rows = [r for r in rows if value(r["end_k"]) is not None]
                last_done = max(done_rows, key=lambda r: (
                    r["end_k"], -math.inf if value(r["sequence"]) is None else r["sequence"], r["id"]), default=None)
                observed = stall["next_phase"].get("start" if last_done is None else str(int(last_done["phase_id"])))
                if following:
                    phase, basis = following[0], "route_next_step"
                elif observed is not None:
                    phase, basis = observed, "observed_next_phase"
                elif snapshot_at is not None and t >= snapshot_at and value(order["current_phase_id"]) is not None:
                    phase, basis = int(order["current_phase_id"]), "erp_current_phase"
        flow = "in_progress" if active else ("not_started" if not touched else "waiting")
        starts = [r["start_k"] for r in rows if value(r["start_k"]) is not None]
        ends = [r["end_k"] for r in rows if value(r["end_k"]) is not None]
        events = [e for e in [created, *starts, *ends] if e is not None]
        last_event = max(events) if events else None
        stall_after = stall["phase_seconds"].get(phase, stall["default_seconds"])
        if oid in abandoned:
            state = "abandoned"
        elif last_event is not None and (t - last_event).total_seconds() > stall_after:
            state = "stalled"
        else:
            state = flow
        if state in ("stalled", "abandoned"):
            since = last_event
        elif state == "in_progress":
            since = max(r["start_k"] for r in active)
        elif state == "waiting":
            since = max(ends) if ends else max(starts)
        else:
            since = created
        if state in ("stalled", "abandoned"):
            status = state.upper()
        elif age is not None and threshold["late_days"] is not None and age > threshold["late_days"]:
            status = "LATE"
        elif age is not None and threshold["at_risk_days"] is not None and age > threshold["at_risk_days"]:
            status = "AT_RISK"
        else:
            status = "CREATED" if state == "not_started" else "IN_PROGRESS"
        out[oid] = {**base, "state": state, "flow_state": flow, "phase_id": phase, "placement_basis": basis,
                    "since": since, "status": status, "age_days": age, "last_event_at": last_event,
                    "stall_threshold_seconds": stall_after,
                    "reworks": sum(1 for r in rows if r["is_rework"] and value(r["start_k"]) is not None)}
    return out


def active(states: dict[int, dict]) -> list[dict]:
    return [s for s in states.values() if s["state"] in ACTIVE]


# --- measured flow and the bottleneck ranking --------------------------------------------------------------


def measured_flow(frames: dict, t: datetime, days: int = FLOW_WINDOW_DAYS, wait_days: int = WAIT_DAYS) -> dict[int, dict]:
    """Per phase over (t - days, t]: the waits before the phases started in it (start minus the previous phase's
    end, in start order; the order's creation before its first phase): how many, their full length and the part
    inside the window; the phases ended in it; the busy seconds inside it. Over (t - wait_days, t]: the waits
    again (how many, their full length)."""
    lookback = t - timedelta(days=max(days, wait_days) + FLOW_LOOKBACK_DAYS)
    window = t - timedelta(days=days)
    wait_window = t - timedelta(days=wait_days)
    rows = known_phases(frames, t)
    rows = rows[rows["start_k"].notna() & (rows["event_k"] > lookback)]
    rows = rows.sort_values(["order_id", "start_k", "sequence", "id"])
    created = dict(zip(frames["orders"]["id"], frames["orders"]["created_at"], strict=True))
    previous = rows.groupby("order_id")["end_k"].shift()
    first = rows.groupby("order_id").cumcount() == 0
    previous = previous.where(~first, rows["order_id"].map(created).where(lambda c: c > lookback))
    rows = rows.assign(previous=previous)
    out = {}
    for pid, g in rows.groupby("phase_id"):
        queued = g[(g["start_k"] > window) & g["previous"].notna() & (g["previous"] <= g["start_k"])]
        waited = g[(g["start_k"] > wait_window) & g["previous"].notna() & (g["previous"] <= g["start_k"])]
        running_end = g["end_k"].fillna(pd.Timestamp(t))
        busy = g[running_end > window]
        busy_seconds = (running_end[busy.index].clip(upper=pd.Timestamp(t))
                        - busy["start_k"].clip(lower=pd.Timestamp(window))).dt.total_seconds().sum()
        out[int(pid)] = {
            "queue_n": len(queued),
            "queue_seconds": float((queued["start_k"] - queued["previous"]).dt.total_seconds().sum()),
            "queue_in_window_seconds": float(
                (queued["start_k"] - queued["previous"].clip(lower=pd.Timestamp(window))).dt.total_seconds().sum()),
            "done": int((g["end_k"] > window).sum()), "busy_seconds": float(busy_seconds),
            "wait_n": len(waited), "wait_seconds": float((waited["start_k"] - waited["previous"]).dt.total_seconds().sum())}
    return out


def peak_concurrency(frames: dict, t: datetime, days: int = FLOW_WINDOW_DAYS) -> dict[int, int]:
    """The most rows of each phase in progress at once over (t - days, t] (an end before a start at one instant)."""
    window = t - timedelta(days=days)
    rows = known_phases(frames, t)
    rows = rows[rows["start_k"].notna()]
    ends = rows["end_k"].fillna(pd.Timestamp(t))
    rows = rows[ends > window]
    out = {}
    for pid, g in rows.groupby("phase_id"):
        edges = sorted([(max(s, pd.Timestamp(window)), 1) for s in g["start_k"]]
                       + [(min(e, pd.Timestamp(t)), -1) for e in ends[g.index]])
        running = peak = 0
        for _, delta in edges:
            running += delta
            peak = max(peak, running)
        out[int(pid)] = peak
    return out


def next_steps(product_id, phase_id: int, routes: dict[int, list[int]], successors: dict[str, int]) -> list[int]:
    """The ROUTE_STEPS phases after phase_id on the product's standard route (when the phase is on it), else the
    chain of the phases that usually came next (no phase twice, not back to phase_id)."""
    route = routes.get(product_id) or []
    if phase_id in route:
        i = route.index(phase_id)
        return route[i + 1:i + 1 + ROUTE_STEPS]
    out: list[int] = []
    current = phase_id
    while len(out) < ROUTE_STEPS:
        current = successors.get(str(current))
        if current is None or current in out or current == phase_id:
            break
        out.append(current)
    return out


def standard_routes(frames: dict) -> dict[int, list[int]]:
    """product id -> its route's phase ids by step sequence (ties: phase id)."""
    routes: dict[int, list[int]] = defaultdict(list)
    for step in frames["routes"].sort_values(["product_id", "sequence", "phase_id"]).itertuples():
        routes[int(step.product_id)].append(int(step.phase_id))
    return dict(routes)


def rank(flow: dict[int, dict], states: dict[int, dict], t: datetime, peaks: dict | None = None,
         days: int = FLOW_WINDOW_DAYS, routes: dict | None = None, successors: dict | None = None) -> list[dict]:
    """BOTTLENECK_RULE: the hours waited for each phase inside the window (t - days, t] (score_hours: the measured
    waits' part in it, plus, for the active orders placed there and not in progress, their wait so far inside it);
    the forecast = expected visits (active orders waiting there now + active orders with the phase among their
    next ROUTE_STEPS steps) x the mean measured wait over WAIT_DAYS + RECENT_WEIGHT x score_hours. Phases with
    >= MIN_QUEUE_EVENTS waits (measured or still running) first, by the forecast; then the others; ties by id."""
    window = t - timedelta(days=days)
    coming: Counter = Counter()
    for s in active(states):
        if s["phase_id"] is None:
            continue
        if s["state"] != "in_progress":
            coming[s["phase_id"]] += 1
        for q in next_steps(s["product_id"], s["phase_id"], routes or {}, successors or {}):
            coming[q] += 1
    waiting: dict[int, list] = defaultdict(list)
    working: Counter = Counter()
    for s in active(states):
        if s["phase_id"] is None:
            continue
        if s["state"] == "in_progress":
            working[s["phase_id"]] += 1
        else:
            waiting[s["phase_id"]].append((t - max(s["since"], window)).total_seconds())
    table = []
    for pid in set(flow) | set(waiting) | set(working) | set(coming):
        f = flow.get(pid, {"queue_n": 0, "queue_seconds": 0.0, "queue_in_window_seconds": 0.0, "done": 0,
                           "busy_seconds": 0.0, "wait_n": 0, "wait_seconds": 0.0})
        peak = (peaks or {}).get(pid)
        waits = f["queue_n"] + len(waiting[pid])
        table.append({
            "phase_id": pid, "queue_n": waits, "measured_hours": f["queue_in_window_seconds"] / 3600,
            "waiting_hours": sum(waiting[pid]) / 3600, "waiting_orders": len(waiting[pid]),
            "score_hours": (f["queue_in_window_seconds"] + sum(waiting[pid])) / 3600, "in_progress": working[pid],
            "mean_wait_hours": f["queue_seconds"] / f["queue_n"] / 3600 if f["queue_n"] else None,
            "throughput_per_day": f["done"] / days, "enough": waits >= MIN_QUEUE_EVENTS,
            "utilisation": f["busy_seconds"] / (days * DAY * peak) if peak else None,
        })
        row = table[-1]
        mean_wait = f["wait_seconds"] / f["wait_n"] / 3600 if f["wait_n"] else None
        row.update(visits=coming[pid], forecast_mean_wait_hours=mean_wait,
                   forecast_hours=coming[pid] * (mean_wait or 0.0) + RECENT_WEIGHT * row["score_hours"])
    table.sort(key=lambda r: (not r["enough"], -r["forecast_hours"], r["phase_id"]))
    for k, row in enumerate(table, start=1):
        row["rank"] = k
    return table


# --- risk --------------------------------------------------------------------------------------------------


def defect_rates(frames: dict, t: datetime) -> dict[int, float]:
    """Share of each product's orders finished by t with at least one quality error."""
    orders = frames["orders"]
    done = orders[orders["finished_at"].notna() & (orders["finished_at"] <= t) & orders["product_id"].notna()]
    with_errors = set(frames["errors"]["order_id"]) if len(frames["errors"]) else set()
    return {int(pid): float(g["id"].isin(with_errors).mean()) for pid, g in done.groupby("product_id")}
