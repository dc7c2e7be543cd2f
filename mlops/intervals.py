"""The remaining time's 80% interval: split conformal, calibrated after training, its error scale set by progress.

Pure computation on pandas frames (no database). The point model (mlops/training.py) is fitted on the training
split; the interval is calibrated on the orders that come after it in time (the validation and test splits: the
orders created after the training period and before the censoring cutoff), on their moments of the last
CALIBRATION_DAYS (the most recent behaviour known: the shop's load drifts with the seasons), never on rows the model
learnt from. For each calibration moment the normalised residual is r = (actual - predicted) / s, with the scale
s = sqrt(max(predicted, SCALE_FLOOR_DAYS)) (an order with more time left is less certain, but not proportionally).
Residuals are grouped by where the order is (Mondrian conformal): its progress bucket (share of its route done:
the first, middle or last third) and its flow state (not started, waiting, in progress; time in state and the rest
enter through the prediction). In each group, with n residuals, the interval's ends are the finite-sample split
conformal quantiles: the floor((n + 1) * ALPHA / 2)-th and the ceil((n + 1) * (1 - ALPHA / 2))-th smallest, so each
tail holds at most ALPHA / 2 of future moments exchangeable with the group's. A group with fewer than MIN_GROUP_ROWS
residuals uses its bucket's, else all of them. The group's median residual corrects the point (the calibration
period is later than the training period: its median error is the model's drift, e.g. a slower or faster shop).

Interval: [max(0, p + lo * s), p + hi * s] around the model's p; point: max(0, p + median * s). Remaining time is
never negative, so a predicted finish is never before the as-of time: a lower end below zero is clipped to zero
(the answer says so). The calibration is stored in the registry row (ModelVersion.residual_quantiles) with its
period and sizes, so serving is deterministic; rows of the old shape ({q10, q90, n}: one band from validation
residuals) are still read (additive band, no correction).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

ALPHA = 0.2  # 80% interval
METHOD = "split_conformal_progress"
VERSION = 2
SCALE_FLOOR_DAYS = 1.0
MIN_GROUP_ROWS = 40
CALIBRATION_DAYS = 180
DEFAULT_TYPICAL_STEPS = 16.0
BUCKETS = ("early", "middle", "late")
BUCKET_EDGES = (1 / 3, 2 / 3)
BUCKET_RULE = ("progress = share of the product's standard route done (phases ended / route steps, at most 1; for a "
               "product without a route, phases ended / the median route length); early < 1/3 <= middle < 2/3 <= late")
STATES = {0: "not_started", 1: "waiting", 2: "in_progress"}
DESCRIPTION = (
    "80% interval by split conformal calibration on the period after training (the validation and test orders' "
    "moments of its last 180 days), "
    "residuals normalised by sqrt(max(prediction, 1 day)) and grouped by progress (first, middle, last third of the "
    "route) and state (not started, waiting, in progress); the point is corrected by the group's median residual; "
    "the lower end is clipped at zero days (a finish never before as_of)"
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


def conformal_ends(residuals: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """The finite-sample split conformal ends of n residuals: the floor((n+1)a/2)-th and ceil((n+1)(1-a/2))-th
    smallest (clamped to the smallest and largest when n is too small for them)."""
    r = np.sort(np.asarray(residuals, dtype=float))
    n = len(r)
    low = max(math.floor((n + 1) * alpha / 2) - 1, 0)
    high = min(math.ceil((n + 1) * (1 - alpha / 2)) - 1, n - 1)
    return float(r[low]), float(r[high])


def _entry(r: np.ndarray) -> dict:
    lo, hi = conformal_ends(r)
    return {"n": int(len(r)), "lo": round(lo, 6), "hi": round(hi, 6), "median": round(float(np.median(r)), 6)}


def recent(frame: pd.DataFrame, days: int = CALIBRATION_DAYS) -> pd.DataFrame:
    """The calibration rows of the last `days` days (by moment) of a period after training."""
    if frame.empty or "moment_at" not in frame:
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
    bucket, state = buckets(frame, typical), states(frame)
    calibration = {
        "method": METHOD, "version": VERSION, "alpha": ALPHA, "description": DESCRIPTION,
        "scale": f"sqrt(max(prediction, {SCALE_FLOOR_DAYS:g} day))", "scale_floor_days": SCALE_FLOOR_DAYS,
        "min_group_rows": MIN_GROUP_ROWS, "typical_steps": typical, "bucket_rule": BUCKET_RULE,
        "overall": _entry(r),
        "buckets": {b: _entry(r[bucket == b]) for b in BUCKETS if (bucket == b).any()},
        "groups": {f"{b}|{s}": _entry(r[(bucket == b) & (state == s)])
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


def is_conformal(calibration: dict | None) -> bool:
    return bool(calibration) and calibration.get("method") == METHOD and "overall" in calibration


def _choose(calibration: dict, bucket: str, state: str) -> tuple[str, dict]:
    minimum = calibration.get("min_group_rows", MIN_GROUP_ROWS)
    group = calibration["groups"].get(f"{bucket}|{state}")
    if group and group["n"] >= minimum:
        return f"{bucket}|{state}", group
    level = calibration["buckets"].get(bucket)
    if level and level["n"] >= minimum:
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
