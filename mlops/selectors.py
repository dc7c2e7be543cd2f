"""Reads of the mlops domain: the registry, the model that answers (or the baseline), predictions, explanations."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from mlops import intervals, training
from mlops.choices import Algorithm, ModelName
from mlops.datasets import (
    CATEGORICAL,
    ETA_NUMERIC,
    LEAD_TIME_NUMERIC,
    RISK_NUMERIC,
    data_as_of,
    eta_dataset,
    eta_open_features,
    order_features_point,
)
from mlops.models import EtaBacktest, ModelVersion
from prodplan.cache import versioned_cache
from prodplan.metrics import MODEL_INFERENCE

logger = logging.getLogger(__name__)

_LOADED: dict[tuple, object] = {}
_LOCK = threading.Lock()


class ArtifactError(Exception):
    """The artifact file is missing, altered (checksum mismatch) or unreadable."""


def model_versions() -> QuerySet[ModelVersion]:
    """The registry, newest first per name (no relations to prefetch)."""
    return ModelVersion.objects.order_by("name", "-version")


def numeric_features(name: str) -> list[str]:
    return {ModelName.LEAD_TIME: LEAD_TIME_NUMERIC, ModelName.ETA: ETA_NUMERIC}.get(name, RISK_NUMERIC)


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file (an artifact's checksum), read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_artifact(version: ModelVersion):
    """Load a version's estimator after checking its SHA-256; cached per (file, mtime, size)."""
    path = Path(settings.MODEL_ARTIFACT_DIR) / version.artifact_path
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ArtifactError(f"artifact {version.artifact_path} is missing") from exc
    key = (version.pk, str(path), stat.st_mtime_ns, stat.st_size, version.artifact_sha256)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    if sha256_of(path) != version.artifact_sha256:
        raise ArtifactError(f"artifact {version.artifact_path} fails its checksum")
    try:
        loader = training.HgbModel if version.algorithm == Algorithm.HGB else training.MlpModel
        model = loader.load(str(path))
    except Exception as exc:  # a corrupt file can fail in many ways inside joblib / torch
        raise ArtifactError(f"artifact {version.artifact_path} cannot be loaded: {type(exc).__name__}") from exc
    with _LOCK:
        _LOADED[key] = model
    return model


@dataclass
class Predictor:
    """The estimator that answers for a target, with the registry row it comes from (None: live baseline)."""

    name: str
    model: object
    version: ModelVersion | None
    algorithm: str
    fallback_reason: str | None = None
    # Why the baseline answers, as codes a page turns into words: no_active_model, artifact_unusable, live_baseline.
    fallback_codes: tuple[str, ...] = ()

    @property
    def is_baseline(self) -> bool:
        return self.algorithm == Algorithm.BASELINE

    @property
    def label(self) -> str:
        if self.is_baseline:
            return "baseline"
        return self.version.label

    def describe(self) -> dict:
        v = self.version
        return {
            "label": self.label, "algorithm": self.algorithm,
            "version": v.version if v else None, "id": v.pk if v else None,
            "trained_at": v.created_at.isoformat() if v else None,
            "data_version": v.data_version if v else None,
            "fallback_reason": self.fallback_reason,
            "fallback_codes": list(self.fallback_codes),
        }

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        started = time.perf_counter()
        values = self.model.predict(frame)
        MODEL_INFERENCE.labels(model=f"{self.name}:{self.algorithm}").observe(time.perf_counter() - started)
        return values

    def interval(self, value: float) -> tuple[float | None, float | None]:
        """80% interval: prediction + validation residual q10 / q90 (clipped at zero days)."""
        q = self.version.residual_quantiles if self.version else {}
        if not q:
            return None, None
        return max(0.0, float(value) + q["q10"]), max(0.0, float(value) + q["q90"])

    @property
    def calibration(self) -> dict:
        """The ETA interval's calibration stored with the answering version (mlops.intervals); {} without one."""
        return (self.version.residual_quantiles or {}) if self.version else {}

    def eta_bounds(self, frame: pd.DataFrame) -> dict:
        """Remaining days (point, 80% interval, calibration group, clipped flags) of every row (mlops.intervals)."""
        return intervals.bounds(self.calibration, frame, self.predict(frame))


def live_baseline(name: str) -> training.Baseline:
    """Baseline from all finished orders when the registry holds none (one SQL query).

    Plan: one scan of finished orders joined to products, grouped by product and by family (GROUPING SETS)."""
    target = ("EXTRACT(EPOCH FROM o.finished_at - o.created_at) / 86400.0" if name == ModelName.LEAD_TIME
              else "(EXISTS (SELECT 1 FROM quality_qualityerror e WHERE e.order_id = o.id AND e.severity >= 2))::int")
    agg = "percentile_cont(0.5) WITHIN GROUP (ORDER BY y)" if name == ModelName.LEAD_TIME else "avg(y)"
    sql = f"""
        WITH rows AS (
            SELECT COALESCE(o.product_id, -1) AS product_id, COALESCE(p.family, 'UNKNOWN') AS family, {target} AS y
            FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
            WHERE o.finished_at >= o.created_at
        )
        SELECT product_id, family, {agg} AS value, GROUPING(product_id) AS g_product, GROUPING(family) AS g_family
        FROM rows GROUP BY GROUPING SETS ((product_id), (family), ())
    """
    params = {"name": str(name), "product": {}, "family": {}, "global": 0.0}
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for product_id, family, value, g_product, g_family in cursor.fetchall():
            if value is None:
                continue
            if not g_product:
                params["product"][str(product_id)] = float(value)
            elif not g_family:
                params["family"][str(family)] = float(value)
            else:
                params["global"] = float(value)
    return training.Baseline(params)


def baseline_predictor(name: str, reason: str | None, codes: tuple[str, ...] = ()) -> Predictor:
    """The newest registered baseline of this target, else one computed live from the data."""
    version = ModelVersion.objects.filter(name=name, algorithm=Algorithm.BASELINE).order_by("-version").first()
    if version is not None:
        return Predictor(name, training.baseline_from_params(version.params), version, Algorithm.BASELINE, reason,
                         codes)
    if name == ModelName.ETA:
        # no registered ETA baseline: fit it on every boundary of the finished orders (one SQL query)
        dataset = eta_dataset()
        model = training.EtaBaseline.fit(name, dataset.frame, dataset.target)
    else:
        model = live_baseline(name)
    return Predictor(name, model, None, Algorithm.BASELINE,
                     (reason + "; " if reason else "") + "no baseline registered: computed from all finished orders",
                     (*codes, "live_baseline"))


def active_predictor(name: str) -> Predictor:
    """The active version's estimator; the baseline when none is active or its artifact fails."""
    version = ModelVersion.objects.filter(name=name, active=True).first()
    if version is None:
        return baseline_predictor(name, "no active model", ("no_active_model",))
    try:
        model = load_artifact(version)
    except ArtifactError as exc:
        logger.warning("active model unusable; answering with the baseline",
                       extra={"model": version.label, "reason": str(exc)})
        return baseline_predictor(name, f"{version.label}: {exc}", ("artifact_unusable",))
    return Predictor(name, model, version, version.algorithm)


@versioned_cache("mlops.order_features")
def order_feature_frame(order_id: int) -> pd.DataFrame:
    """One order's features at its creation; they never change within a data version, so they are cached
    (versioned cache; the nightly task pre-fills it for open orders: order_feature_frame.prime)."""
    return order_features_point(ids=[int(order_id)])


def features_from_payload(name: str, payload: dict) -> pd.DataFrame:
    """A one-row feature frame from a client payload; absent numeric features are missing (NaN)."""
    row = {"order_id": 0, "family": str(payload.get("family") or "UNKNOWN"),
           "product_id": int(payload.get("product_id") if payload.get("product_id") is not None else -1)}
    for column in numeric_features(name):
        value = payload.get(column)
        row[column] = float(value) if value is not None else np.nan
    return pd.DataFrame([row])


def _created_by(frame: pd.DataFrame, as_of) -> bool:
    """Was this one-order frame's order created by as_of (None: no as_of asked)?"""
    return as_of is None or (not frame.empty and frame["created_at"].iloc[0] <= as_of)


def predict(*, name: str, order_id: int | None = None, features: dict | None = None, as_of=None) -> dict | None:
    """Predict one order (by id, features at its creation) or one feature payload. None: unknown order (or, with
    as_of, one not created by then). ETA: see predict_eta (the order's state at as_of)."""
    if name == ModelName.ETA:
        return predict_eta(order_id=order_id, features=features, as_of=as_of)
    if order_id is not None:
        frame = order_feature_frame(order_id)
        if frame.empty or not _created_by(frame, as_of):
            return None
    else:
        frame = features_from_payload(name, features or {})
    predictor = active_predictor(name)
    value = float(predictor.predict(frame)[0])
    answer = {"name": str(name), "model": predictor.describe(), "order_id": order_id}
    if as_of is not None:
        answer["as_of"] = as_of.isoformat()
    if name == ModelName.LEAD_TIME:
        lower, upper = predictor.interval(value)
        answer.update({"lead_time_days": round(value, 4),
                       "interval_80": None if lower is None else {"lower": round(lower, 4), "upper": round(upper, 4)},
                       "interval_basis": "validation residuals q10-q90" if lower is not None else None})
        if order_id is not None:
            created = frame["created_at"].iloc[0]
            answer["created_at"] = created.isoformat()
            answer["predicted_finish"] = (created + pd.Timedelta(days=value)).isoformat()
    else:
        answer["probability"] = round(value, 4)
    if predictor.is_baseline:
        answer["baseline_level"] = predictor.model.source(frame)[0]
    answer["features"] = {c: _jsonable(frame[c].iloc[0]) for c in CATEGORICAL + numeric_features(name)}
    return answer


def _eta_frame(order_id: int, as_of) -> pd.DataFrame:
    """The ETA features of one order open at as_of (active or stalled; empty when not open then)."""
    if as_of is None:
        return pd.DataFrame()
    return eta_open_features(as_of=as_of, ids=[int(order_id)], with_stalled=True)


def stalled_answer(*, order_id: int, frame: pd.DataFrame, as_of) -> dict | None:
    """The answer for a stalled order instead of a remaining time (None when the order is not stalled)."""
    if frame.empty or not frame["stalled"].iloc[0]:
        return None
    idle, threshold = float(frame["idle_days"].iloc[0]), float(frame["stall_threshold_days"].iloc[0])
    return {
        "name": str(ModelName.ETA), "order_id": order_id, "status": "stalled", "as_of": as_of.isoformat(),
        "idle_days": round(idle, 3), "stall_threshold_days": round(threshold, 3), "remaining_days": None,
        "reason": (f"no event for {idle:.1f} days, longer than the stall threshold of {threshold:.1f} days at its "
                   "phase: the order is stalled (orders.selectors.ORDER_STATE_RULE), not moving, so no remaining "
                   "time is predicted"),
    }


CLIPPED_NOTE = ("the interval's lower end fell before as_of and is clipped to it (0 days): a finish is never "
                "predicted before the as-of time")


ETA_BACKTEST_RETRAINED = "retrained at each date"  # EtaBacktest.model_source of a backtest that retrains


def eta_backtest_score() -> dict | None:
    """The latest stored ETA backtest that scored predictions (manage.py eta_backtest): how often the 80% interval
    held the real finish. (A run whose every date was skipped is kept but does not hide the last real score.)"""
    latest = EtaBacktest.objects.filter(scored__gt=0).order_by("-created_at", "-id").first()  # one that scored
    if latest is None:
        return None
    last = timezone.localtime(latest.start) + timedelta(days=7 * (latest.weeks - 1))  # weekly on Lisbon's clock
    return {"id": latest.id, "created_at": latest.created_at, "start": latest.start, "end": last,
            "weeks": latest.weeks, "scored": latest.scored, "covered": latest.covered, "coverage": latest.coverage,
            "finished": latest.finished, "mae_days": latest.mae_days, "bias_days": latest.bias_days,
            "never_finished": latest.never_finished, "unknown": latest.unknown, "stalled": latest.stalled,
            "by_bucket": latest.by_bucket, "by_state": latest.by_state, "weekly": latest.weekly,
            "model_source": latest.model_source, "data_as_of": latest.data_as_of, "details": latest.details,
            "retrained": latest.model_source == ETA_BACKTEST_RETRAINED}


def eta_backtest_line(score: dict | None = ...) -> dict:
    """What every ETA shows about its interval's track record: the latest backtest's coverage with n and dates, or
    that no backtest has run (English, as the API's texts are; the pages translate the same figures)."""
    score = eta_backtest_score() if score is ... else score
    if not score or score["coverage"] is None:
        return {"coverage": None, "n": 0, "start": None, "end": None,
                "text": "80% interval: no backtest has run yet (manage.py eta_backtest)"}
    start, end = (timezone.localtime(score[k]).date().isoformat() for k in ("start", "end"))  # Lisbon dates
    pct = round(100 * score["coverage"])
    return {"coverage": score["coverage"], "n": score["scored"], "start": start, "end": end, "weeks": score["weeks"],
            "backtest_id": score["id"],
            "text": f"80% interval: right {pct}% of the time (backtest, n={score['scored']}, weekly {start} to {end})"}


def _model_note(predictor: Predictor, as_of, given: bool) -> str | None:
    v = predictor.version
    if given and v is not None and v.data_as_of is not None and v.data_as_of > as_of:
        return (f"the answering model was trained with data up to {v.data_as_of.date().isoformat()}, after as_of: "
                "this answer is not what could be known at as_of (manage.py eta_backtest retrains with only what was "
                "known at each date)")
    return None


def predict_eta(*, order_id: int | None = None, features: dict | None = None, as_of=None) -> dict | None:
    """Remaining days of an order open at as_of (default: the data's as-of) from its state then (phase, time in
    state, progress, load, pace), or of a feature payload, with the calibrated 80% interval (mlops.intervals) and
    the latest backtest's coverage. A stalled order gets {"status": "stalled", "idle_days", ...} instead of a
    remaining time; a predicted finish is never before as_of. None: no order open at as_of with that id."""
    given = as_of is not None
    as_of = as_of or data_as_of()
    if order_id is not None:
        frame = _eta_frame(order_id, as_of)
        if frame.empty:
            return None
        stalled = stalled_answer(order_id=order_id, frame=frame, as_of=as_of)
        if stalled:
            return stalled
    else:
        frame = features_from_payload(ModelName.ETA, features or {})
    predictor = active_predictor(ModelName.ETA)
    bounds = predictor.eta_bounds(frame)
    value, lower, upper = float(bounds["point"][0]), float(bounds["lower"][0]), float(bounds["upper"][0])
    has_interval = not np.isnan(lower)
    answer = {"name": str(ModelName.ETA), "model": predictor.describe(), "order_id": order_id,
              "remaining_days": round(value, 4),
              "interval_80": {"lower": round(lower, 4), "upper": round(upper, 4)} if has_interval else None,
              "interval_basis": intervals.basis(predictor.calibration) if has_interval else None,
              "interval_group": bounds["group"][0], "interval_backtest": eta_backtest_line()}
    clipped = has_interval and bool(bounds["clipped"][0])
    answer["lower_clipped_at_as_of"] = clipped
    notes = [CLIPPED_NOTE] if clipped else []
    if order_id is not None:
        answer["as_of"] = as_of.isoformat()
        answer["created_at"] = frame["created_at"].iloc[0].isoformat()
        answer["predicted_finish"] = (as_of + pd.Timedelta(days=value)).isoformat()
        if has_interval:
            answer["finish_interval_80"] = {"earliest": (as_of + pd.Timedelta(days=lower)).isoformat(),
                                            "latest": (as_of + pd.Timedelta(days=upper)).isoformat()}
        note = _model_note(predictor, as_of, given)
        if note:
            notes.append(note)
    answer["notes"] = notes
    if predictor.is_baseline:
        answer["baseline_level"] = predictor.model.source(frame)[0]
    answer["features"] = {c: _jsonable(frame[c].iloc[0]) for c in CATEGORICAL + ETA_NUMERIC if c in frame}
    return answer


@versioned_cache("mlops.order_page_eta")
def order_page_eta(*, order_id: int, as_of) -> dict | None:
    """The order page's remaining-time block at as_of: predict_eta's answer plus the latest backtest (one dict)."""
    answer = predict_eta(order_id=order_id, as_of=as_of)
    if answer is None:
        return None
    return {**answer, "backtest": eta_backtest_score()}


@versioned_cache("mlops.order_page_lead_time")
def order_page_lead_time(*, order_id: int) -> dict | None:
    """The order page's lead-time prediction (features at creation: the same at every as_of), cached."""
    return predict(name=ModelName.LEAD_TIME, order_id=order_id)


_BASELINE_METHODS = {
    ModelName.ETA: ("baseline: the answer is the median remaining time of the order's family after the phase it "
                    "finished last (else its family's, else the global one); no other feature is used"),
}
_BASELINE_METHOD = ("baseline: the answer is the product's historical value (else its family's, else the global "
                    "one); no other feature is used")


def explain(*, name: str, order_id: int | None = None, as_of=None) -> dict | None:
    """Global permutation importance of the answering model; with order_id, that prediction's contributions.

    None: no such order (with as_of: none created by then; for ETA: no order open at as_of with that id, since only
    open orders have a remaining time)."""
    predictor = active_predictor(name)
    answer = {"name": str(name), "model": predictor.describe()}
    if as_of is not None:
        answer["as_of"] = as_of.isoformat()
    if predictor.is_baseline:
        answer["global_importance"] = []
        answer["method"] = _BASELINE_METHODS.get(name, _BASELINE_METHOD)
    else:
        answer["global_importance"] = predictor.version.importance
        answer["global_method"] = ("permutation importance on the validation split: mean drop of the score "
                                   "(-MAE for lead time and remaining time, ROC AUC for risk) over 3 shuffles "
                                   "of the feature")
    if order_id is None:
        return answer
    if name == ModelName.ETA:
        as_of = as_of or data_as_of()
        frame = _eta_frame(order_id, as_of)
        stalled = stalled_answer(order_id=order_id, frame=frame, as_of=as_of)
        if stalled:
            return {**answer, **stalled}
    else:
        frame = order_feature_frame(order_id)
        if not frame.empty and not _created_by(frame, as_of):
            return None
    if frame.empty:
        return None
    answer["order_id"] = order_id
    if name == ModelName.ETA:
        answer["as_of"] = as_of.isoformat()
        bounds = predictor.eta_bounds(frame)
        answer["remaining_days"] = round(float(bounds["point"][0]), 4)
        answer["calibration_note"] = ("the contributions explain the model's prediction; the answer (remaining_days) "
                                      "adds the interval calibration's median correction for the order's progress "
                                      "group (mlops.intervals)")
    if predictor.is_baseline:
        answer["prediction"] = float(predictor.predict(frame)[0])
        answer["baseline_level"] = predictor.model.source(frame)[0]
        answer["contributions"] = []
        return answer
    features = CATEGORICAL + numeric_features(name)
    contributions, value, reference_value = training.shapley_contributions(
        predictor.model, frame, predictor.version.params.get("reference", {}), features)
    answer.update({
        "prediction": round(value, 5), "reference_prediction": round(reference_value, 5),
        "contributions": contributions,
        "method": ("sampled Shapley values against a reference order (training medians, most frequent family and "
                   "product): 64 seeded random feature orders, each feature switched from the reference's value "
                   "to the order's and credited with the change; contributions sum to prediction - "
                   "reference_prediction"),
    })
    return answer


def _jsonable(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
