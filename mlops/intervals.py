"""The remaining time's 80% interval: group-conditional (Mondrian) split conformal by progress, calibrated after training.

Pure computation on pandas frames (no database). The point model (mlops/training.py) is fitted on the training
split; the interval is calibrated on the orders that come after it in time (the validation and test splits: the
orders created after the training period and before the censoring cutoff, all finished before the as-of), never on
rows the model learnt from. For each calibration moment the normalised residual (the conformity score) is
r = (actual - predicted) / s, with the scale s = sqrt(max(predicted, SCALE_FLOOR_DAYS)) (an order with more time
left is less certain, but not proportionally).

Mondrian conformal: residuals are grouped by where the order is, its progress bucket (share of its route done: the
first, middle or last third) and its flow state (not started, waiting, in progress); a group's interval uses only
its own residuals, so the coverage holds within each group, hence within each progress bucket (a mixture of its
groups), not only on average over buckets with different error scales. In a group of n residuals, the ends are the
finite-sample conformal quantiles (conformal_quantile): the upper end is the ceil((n + 1)(1 - ALPHA / 2))-th
smallest residual, the lower end the floor((n + 1) ALPHA / 2)-th, so each tail holds at most ALPHA / 2 of a future
moment exchangeable with the group's (ceil((n + 1)(1 - a)) / n is the empirical quantile level that guarantees
1 - a). A group is used only when it has at least MIN_GROUP_ROWS moments of at least MIN_GROUP_ORDERS distinct
orders (moments of one order are correlated: the orders are the effective sample); else its bucket's residuals,
if they meet the same minimum, else the pooled residuals of every bucket.

Drift: the shop's load changes with the seasons, so recent behaviour matters more than old. Each calibration
moment is weighted 0.5 ** (age / HALF_LIFE_DAYS), its age counted back from the latest calibration moment, and the
quantiles are the weighted conformal quantiles (the test moment weighs 1, at +infinity; Barber, Candes, Ramdas and
Tibshirani 2023, conformal prediction beyond exchangeability): with equal weights, exactly the quantiles above;
under drift, the coverage gap is bounded by the weighted distance between the old moments and the new. The group's
weighted median residual corrects the point (the calibration period is later than the training period: its median
error is the model's drift, e.g. a slower or faster shop).

Interval: [max(0, p + lo * s), p + hi * s] around the model's p; point: max(0, p + median * s). Remaining time is
never negative, so a predicted finish is never before the as-of time: a lower end below zero is clipped to zero
(the answer says so). The calibration is stored in the registry row (ModelVersion.residual_quantiles) with its
period, sizes and each group's profile (shift_check compares it with the orders a prediction is made for), so
serving is deterministic; rows of the old shape ({q10, q90, n}: one band from validation residuals) are still read
(additive band, no correction).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

ALPHA = 0.2  # 80% interval
METHOD = "split_conformal_progress"
VERSION = 3
SCALE_FLOOR_DAYS = 1.0
MIN_GROUP_ROWS = 40  # a group's interval needs this many calibration moments...
MIN_GROUP_ORDERS = 30  # ...of this many distinct orders, else its bucket's, else the pooled band
HALF_LIFE_DAYS = 90.0  # a calibration moment's weight halves every 90 days of age
CALIBRATION_DAYS = None  # every moment after training (weighted by age); a number keeps only that many last days
DEFAULT_TYPICAL_STEPS = 16.0
BUCKETS = ("early", "middle", "late")
BUCKET_EDGES = (1 / 3, 2 / 3)
BUCKET_RULE = ("progress = share of the product's standard route done (phases ended / route steps, at most 1; for a "
               "product without a route, phases ended / the median route length); early < 1/3 <= middle < 2/3 <= late")
STATES = {0: "not_started", 1: "waiting", 2: "in_progress"}
DESCRIPTION = (
    "80% interval by group-conditional (Mondrian) split conformal calibration on the period after training (the "
    "validation and test orders' moments, weighted by recency: half-life 90 days), residuals normalised by "
    "sqrt(max(prediction, 1 day)) and calibrated separately by progress (first, middle, last third of the route) "
    "and state (not started, waiting, in progress) with the finite-sample quantile ceil((n+1)(1-a/2)); a group "
    "with fewer than 40 moments or 30 orders uses its progress third's, else the pooled band; the point is "
    "corrected by the group's median residual; the lower end is clipped at zero days (a finish never before as_of)"
)
LEGACY_DESCRIPTION = "validation residuals q10-q90 (one band for every order)"


def progress(frame: pd.DataFrame, typical_steps: float = DEFAULT_TYPICAL_STEPS) -> np.ndarray:
    """Share of the route done at the moment: route_share_done, else phases done / typical_steps; in [0, 1]."""
    share = pd.to_numeric(frame["route_share_done"], errors="coerce").to_numpy(dtype=float)
    done = pd.to_numeric(frame["done_phases"], errors="coerce").fillna(0).to_numpy(dtype=float)
    fallback = done / max(float(typical_steps or DEFAULT_TYPICAL_STEPS), 1.0)
    return np.clip(np.where(np.isnan(share), fallback, share), 0.0, 1.0)


def buckets(frame: pd.DataFrame, typical_steps: float = DEFAULT_TYPICAL_STEPS) -> np.ndarray:
    """early / middle / late: the first, middle and last third of the route done (BUCKET_RULE)."""
    p = progress(frame, typical_steps)
    return np.where(p < BUCKET_EDGES[0], BUCKETS[0], np.where(p < BUCKET_EDGES[1], BUCKETS[1], BUCKETS[2]))


def states(frame: pd.DataFrame) -> np.ndarray:
    codes = pd.to_numeric(frame["state_code"], errors="coerce").fillna(1).astype(int)
    return np.array([STATES.get(c, "waiting") for c in codes], dtype=object)


def scale(pred: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(np.asarray(pred, dtype=float), SCALE_FLOOR_DAYS))


def conformal_quantile(scores: np.ndarray, level: float, weights: np.ndarray | None = None) -> float:
    """The split conformal quantile of calibration scores at `level` (e.g. 0.9): with n equal weights the
    ceil((n + 1) * level)-th smallest score (the empirical quantile at level ceil((n + 1) level) / n), +inf when that
    rank exceeds n (too few scores for the level). With weights w_i in (0, 1] (the test point weighing 1, at +inf):
    the smallest score whose cumulative weight reaches level * (sum(w) + 1)."""
    r = np.asarray(scores, dtype=float)
    w = np.ones(len(r)) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(r, kind="stable")
    r, w = r[order], w[order]
    cumulative = np.cumsum(w)
    target = level * (cumulative[-1] + 1.0) if len(r) else 1.0
    i = int(np.searchsorted(cumulative, target - 1e-9 * max(target, 1.0)))
    return float(r[i]) if i < len(r) else math.inf


def conformal_ends(residuals: np.ndarray, alpha: float = ALPHA, weights: np.ndarray | None = None) -> tuple[float, float]:
    """The finite-sample split conformal ends of n residuals: the floor((n+1)a/2)-th and ceil((n+1)(1-a/2))-th
    smallest with equal weights (conformal_quantile of r and of -r); an end beyond the data (a group under
    2 / a - 1 residuals) is the smallest or largest residual: such groups are never used (MIN_GROUP_ROWS)."""
    r = np.asarray(residuals, dtype=float)
    if not len(r):
        return math.nan, math.nan
    hi = conformal_quantile(r, 1 - alpha / 2, weights)
    lo = -conformal_quantile(-r, 1 - alpha / 2, weights)
    return (float(r.min()) if math.isinf(lo) else lo), (float(r.max()) if math.isinf(hi) else hi)


def recency_weights(frame: pd.DataFrame, half_life_days: float | None = HALF_LIFE_DAYS) -> np.ndarray:
    """0.5 ** (age / half_life) of each calibration moment, its age counted back from the latest one (1 without
    moments or a half-life)."""
    if not half_life_days or "moment_at" not in frame or frame.empty:
        return np.ones(len(frame))
    age = (frame["moment_at"].max() - frame["moment_at"]).dt.total_seconds().to_numpy(dtype=float) / 86400.0
    return 0.5 ** (age / float(half_life_days))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cumulative, cumulative[-1] / 2))])


PROFILE = ("time_in_state_days", "active_orders", "elapsed_days")  # medians kept per group: what shift_check compares


def _profile(frame: pd.DataFrame, pred: np.ndarray) -> dict:
    out = {"predicted_days": round(float(np.median(pred)), 4)} if len(pred) else {}
    for column in PROFILE:
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce").dropna()
            if len(values):
                out[column] = round(float(values.median()), 4)
    return out


def _entry(r: np.ndarray, w: np.ndarray, orders: np.ndarray | None = None, frame: pd.DataFrame | None = None,
           pred: np.ndarray | None = None) -> dict:
    lo, hi = conformal_ends(r, weights=w)
    entry = {"n": int(len(r)), "orders": int(len(np.unique(orders))) if orders is not None else int(len(r)),
             "n_effective": round(float(w.sum() ** 2 / (w ** 2).sum()), 1),
             "lo": round(lo, 6), "hi": round(hi, 6), "median": round(weighted_median(r, w), 6)}
    if frame is not None and pred is not None:
        entry["profile"] = _profile(frame, pred)
    return entry


def recent(frame: pd.DataFrame, days: int | None = CALIBRATION_DAYS) -> pd.DataFrame:
    """The calibration rows of the last `days` days (by moment) of a period after training (all when days is None:
    the weights favour the recent ones)."""
    if frame.empty or "moment_at" not in frame or days is None:
        return frame
    return frame[frame["moment_at"] >= frame["moment_at"].max() - pd.Timedelta(days=days)]


def typical_route_steps(frame: pd.DataFrame) -> float:
    steps = pd.to_numeric(frame["route_steps"], errors="coerce")
    steps = steps[steps > 0]
    return float(steps.median()) if len(steps) else DEFAULT_TYPICAL_STEPS


def calibrate(frame: pd.DataFrame, pred: np.ndarray, actual: np.ndarray) -> dict:
    """The interval's calibration from moments after the training period (frame: their features; pred: the
    model's predictions; actual: the remaining days). {} when there is nothing to calibrate on."""
    pred, actual = np.asarray(pred, dtype=float), np.asarray(actual, dtype=float)
    if not len(pred):
        return {}
    typical = typical_route_steps(frame)
    r = (actual - pred) / scale(pred)
    w = recency_weights(frame)
    bucket, state = buckets(frame, typical), states(frame)
    orders = frame["order_id"].to_numpy() if "order_id" in frame else np.arange(len(frame))
    frame = frame.reset_index(drop=True)

    def entry(mask: np.ndarray) -> dict:
        return _entry(r[mask], w[mask], orders[mask], frame[mask], pred[mask])

    calibration = {
        "method": METHOD, "version": VERSION, "alpha": ALPHA, "description": DESCRIPTION,
        "scale": f"sqrt(max(prediction, {SCALE_FLOOR_DAYS:g} day))", "scale_floor_days": SCALE_FLOOR_DAYS,
        "min_group_rows": MIN_GROUP_ROWS, "min_group_orders": MIN_GROUP_ORDERS, "half_life_days": HALF_LIFE_DAYS,
        "typical_steps": typical, "bucket_rule": BUCKET_RULE,
        "overall": entry(np.ones(len(r), dtype=bool)),
        "buckets": {b: entry(bucket == b) for b in BUCKETS if (bucket == b).any()},
        "groups": {f"{b}|{s}": entry((bucket == b) & (state == s))
                   for b in BUCKETS for s in STATES.values() if ((bucket == b) & (state == s)).any()},
    }
    if "moment_at" in frame and len(frame):
        calibration["period"] = {"start": frame["moment_at"].min().isoformat(), "end": frame["moment_at"].max().isoformat()}
    if "finished_at" in frame and frame["finished_at"].notna().any():
        # the latest fact the calibration used: the model and its interval know nothing after it
        calibration["known_until"] = frame["finished_at"].max().isoformat()
    residual = actual - pred  # the old shape's band, for readers of {q10, q90}
    calibration.update({"q10": float(np.percentile(residual, 10)), "q90": float(np.percentile(residual, 90)),
                        "n": int(len(residual))})
    calibration["coverage"] = coverage(calibration, frame, pred, actual)  # in-sample: ~80% by construction
    return calibration


def pooled(calibration: dict) -> dict:
    """The same calibration with one pooled band for every order (no groups): what Mondrian calibration replaces."""
    return {**calibration, "buckets": {}, "groups": {}}


def is_conformal(calibration: dict | None) -> bool:
    return bool(calibration) and calibration.get("method") == METHOD and "overall" in calibration


def _large_enough(calibration: dict, entry: dict | None) -> bool:
    """A group's own interval needs MIN_GROUP_ROWS moments of MIN_GROUP_ORDERS orders (older rows: rows only)."""
    return bool(entry) and entry["n"] >= calibration.get("min_group_rows", MIN_GROUP_ROWS) \
        and entry.get("orders", entry["n"]) >= calibration.get("min_group_orders", 0)


def _choose(calibration: dict, bucket: str, state: str) -> tuple[str, dict]:
    group = calibration["groups"].get(f"{bucket}|{state}")
    if _large_enough(calibration, group):
        return f"{bucket}|{state}", group
    level = calibration["buckets"].get(bucket)
    if _large_enough(calibration, level):
        return bucket, level
    return "overall", calibration["overall"]


def bounds(calibration: dict | None, frame: pd.DataFrame, pred: np.ndarray) -> dict:
    """Point, 80% interval and the calibration group of each row, in days from the moment (as_of).

    {"point", "lower", "upper": arrays (lower/upper NaN without a calibration), "group": list, "clipped": bool array
    (the lower end was below zero and is zero: a finish is never before as_of)}."""
    pred = np.clip(np.asarray(pred, dtype=float), 0.0, None)
    n = len(pred)
    if not calibration:
        nan = np.full(n, np.nan)
        return {"point": pred, "lower": nan, "upper": nan.copy(), "group": [None] * n, "clipped": np.zeros(n, bool)}
    if not is_conformal(calibration):  # old rows: one additive band
        raw_lower = pred + float(calibration["q10"])
        upper = np.maximum(pred + float(calibration["q90"]), 0.0)
        return {"point": pred, "lower": np.maximum(raw_lower, 0.0), "upper": upper, "group": ["all"] * n,
                "clipped": raw_lower < 0}
    typical = calibration.get("typical_steps", DEFAULT_TYPICAL_STEPS)
    bucket, state, s = buckets(frame, typical), states(frame), scale(pred)
    point, lower, upper, groups = np.empty(n), np.empty(n), np.empty(n), []
    raw_lower = np.empty(n)
    for i in range(n):
        key, entry = _choose(calibration, bucket[i], state[i])
        groups.append(key)
        raw_lower[i] = pred[i] + entry["lo"] * s[i]
        upper[i] = max(pred[i] + entry["hi"] * s[i], 0.0)
        point[i] = min(max(pred[i] + entry["median"] * s[i], 0.0), upper[i])
    lower = np.minimum(np.maximum(raw_lower, 0.0), point)
    return {"point": point, "lower": lower, "upper": upper, "group": groups, "clipped": raw_lower < 0}


def coverage(calibration: dict, frame: pd.DataFrame, pred: np.ndarray, actual: np.ndarray) -> dict:
    """Share of rows whose actual remaining days fall in their interval, overall and by progress bucket."""
    actual = np.asarray(actual, dtype=float)
    if not len(actual) or not calibration:
        return {"n": 0, "coverage": None, "by_bucket": {}}
    b = bounds(calibration, frame, pred)
    inside = (b["lower"] <= actual) & (actual <= b["upper"])
    bucket = buckets(frame, calibration.get("typical_steps", DEFAULT_TYPICAL_STEPS))
    return {"n": int(len(actual)), "coverage": round(float(inside.mean()), 4),
            "by_bucket": {k: {"n": int((bucket == k).sum()), "coverage": round(float(inside[bucket == k].mean()), 4)}
                          for k in BUCKETS if (bucket == k).any()}}


def basis(calibration: dict | None) -> str | None:
    """How the interval was made, in words (None: no interval)."""
    if not calibration:
        return None
    return DESCRIPTION if is_conformal(calibration) else LEGACY_DESCRIPTION


def shift_check(calibration: dict | None, frame: pd.DataFrame, pred: np.ndarray) -> dict:
    """Per progress bucket: how many orders are predicted, which calibration group answered them (with its size in
    moments and orders: is it under-sized?) and the medians of the calibration bucket's moments next to those of
    the orders predicted (prediction, time in state, load, age: is it shifted?)."""
    if not is_conformal(calibration) or frame.empty:
        return {}
    pred = np.clip(np.asarray(pred, dtype=float), 0.0, None)
    bucket = buckets(frame, calibration.get("typical_steps", DEFAULT_TYPICAL_STEPS))
    state = states(frame)
    frame = frame.reset_index(drop=True)
    out = {}
    for b in BUCKETS:
        mask = bucket == b
        if not mask.any():
            continue
        used: dict[str, dict] = {}
        for s in state[mask]:
            key, entry = _choose(calibration, b, s)
            item = used.setdefault(key, {"rows": 0, "calibration_n": entry["n"],
                                         "calibration_orders": entry.get("orders")})
            item["rows"] += 1
        level = calibration["buckets"].get(b, {})
        out[b] = {"n": int(mask.sum()), "groups_used": used,
                  "calibration": {"n": level.get("n"), "orders": level.get("orders"),
                                  "profile": level.get("profile", {})},
                  "predicted": _profile(frame[mask], pred[mask]),
                  "states": {s: int((state[mask] == s).sum()) for s in STATES.values() if (state[mask] == s).any()}}
    return out


def coverage_interval(covered: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Clopper-Pearson (exact binomial) interval of a coverage of covered / n: what a count of n orders can tell
    (None without orders). It treats the orders as independent; orders open on one date share the shop's state,
    so the real uncertainty is wider."""
    if not n:
        return None
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if covered == 0 else float(beta.ppf(a, covered, n - covered + 1))
    hi = 1.0 if covered == n else float(beta.ppf(1 - a, covered + 1, n - covered))
    return round(lo, 4), round(hi, 4)
