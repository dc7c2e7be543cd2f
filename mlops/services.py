"""Writes of the mlops domain: train and register model versions, promote them, store predictions."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from mlops import intervals, load_baseline, promotion, training
from mlops.choices import REGRESSION_TARGETS, Algorithm, ModelName, TrainingStatus
from mlops.datasets import (
    Dataset,
    data_as_of,
    dataset_for,
    eta_dataset,
    eta_features,
    eta_open_features,
    order_features,
)
from mlops.models import EtaBacktest, ModelVersion, Prediction, TrainingJob
from mlops.selectors import active_predictor, load_artifact, order_feature_frame, sha256_of
from orders.models import ManufacturingOrder
from prodplan.cache import bump_data_version, data_version

logger = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 20
MIN_VALIDATION_ROWS = 5
IMPORTANCE_MAX_ROWS = 20_000  # permutation importance on a seeded sample of larger validation splits
DEFAULT_HGB_PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                      "l2_regularization": 1.0}
DEFAULT_MLP_PARAMS = {"epochs": 40, "batch_size": 256, "hidden": 64, "product_dim": 8, "family_dim": 3,
                      "lr": 3e-3, "weight_decay": 1e-4}


# ETA rows are one per phase boundary (about 20 per order): the MLP is not cheap there, boosting only.
DEFAULT_ALGORITHMS = {ModelName.ETA: (Algorithm.HGB,)}
TARGETS = (ModelName.LEAD_TIME, ModelName.RISK, ModelName.ETA)


class TrainingNotSupported(Exception):
    """The data holds too few finished orders to train and validate a model."""


def artifact_dir() -> Path:
    path = Path(settings.MODEL_ARTIFACT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fit(name: str, algorithm: str, ds: Dataset, seed: int, params: dict):
    train, validation = ds.splits["train"], ds.splits["validation"]
    if algorithm == Algorithm.BASELINE:
        return training.baseline_class(name).fit(name, train, ds.target)
    if algorithm == Algorithm.HGB:
        return training.HgbModel.fit(name, train, ds.target, ds.numeric, seed, params)
    return training.MlpModel.fit(name, train, validation, ds.target, ds.numeric, seed, params)


def fit_and_evaluate(*, name: str, algorithm: str, dataset: Dataset, seed: int = 0,
                     params: dict | None = None) -> training.Fitted:
    """Fit one algorithm on the training split; metrics on validation and test; importance on validation."""
    defaults = {Algorithm.HGB: DEFAULT_HGB_PARAMS, Algorithm.MLP: DEFAULT_MLP_PARAMS}.get(algorithm, {})
    params = {**defaults, **(params or {})}
    started = time.perf_counter()
    model = _fit(name, algorithm, dataset, seed, params)
    seconds = time.perf_counter() - started
    validation = dataset.splits["validation"]
    metrics = {split: training.evaluate(name, model, dataset.splits[split], dataset.target)
               for split in ("validation", "test")}
    residuals = {}
    if name == ModelName.ETA and len(validation):
        residuals = eta_calibration(model, dataset)  # the calibrated interval (mlops.intervals)
    elif name in REGRESSION_TARGETS and len(validation):
        residuals = training.residual_quantiles(validation[dataset.target].to_numpy(), model.predict(validation))
    importance = []
    if algorithm != Algorithm.BASELINE:
        sample = validation
        if len(validation) > IMPORTANCE_MAX_ROWS:  # ETA: ~80k validation boundaries at full scale
            sample = validation.sample(n=IMPORTANCE_MAX_ROWS, random_state=seed).sort_index()
        importance = training.permutation_importance(name, model, sample, dataset.target,
                                                     dataset.features, seed=seed)
    return training.Fitted(algorithm=algorithm, model=model, params=params, metrics=metrics,
                           residuals=residuals, importance=importance, seconds=seconds)


def _next_version(name: str) -> int:
    return (ModelVersion.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0) + 1


@transaction.atomic
def model_version_register(*, name: str, fitted: training.Fitted, dataset: Dataset, seed: int,
                           baseline_validation: dict | None) -> ModelVersion:
    """Store a fitted model's artifact (with its SHA-256) and its registry row, inactive."""
    ModelVersion.objects.select_for_update().filter(name=name).exists()
    version = _next_version(name)
    params = dict(fitted.params)
    artifact_path, checksum = "", ""
    if fitted.algorithm == Algorithm.BASELINE:
        params = {**params, **fitted.model.params}
    else:
        suffix = "joblib" if fitted.algorithm == Algorithm.HGB else "pt"
        artifact_path = f"{name}-v{version}-{fitted.algorithm}.{suffix}"
        target = artifact_dir() / artifact_path
        target.write_bytes(fitted.model.dump())
        checksum = sha256_of(target)
        params["reference"] = training.reference_row(dataset.splits["train"], dataset.numeric)
    metrics = dict(fitted.metrics)
    if baseline_validation is not None:
        metrics["baseline_validation"] = baseline_validation
    return ModelVersion.objects.create(
        name=name, version=version, algorithm=fitted.algorithm, params=params, features=dataset.features,
        data_version=dataset.data_version, data_as_of=dataset.as_of, train_start=dataset.train_start,
        validation_start=dataset.validation_start, test_start=dataset.test_start, test_end=dataset.test_end,
        rows={**dataset.rows(), "censor_cutoff": dataset.censor_cutoff.isoformat() if dataset.censor_cutoff else None},
        metrics=metrics, importance=fitted.importance, residual_quantiles=fitted.residuals,
        artifact_path=artifact_path, artifact_sha256=checksum, training_seconds=round(fitted.seconds, 3),
        seed=seed,
    )


def check_promotion(model_version: ModelVersion) -> tuple[bool, str]:
    """May this version become active? Only a non-baseline whose recorded evidence (computed when it was trained,
    mlops.promotion.RULE) passed, compared with the version that is active now."""
    if model_version.algorithm == Algorithm.BASELINE:
        return False, "a baseline is a reference and the fallback answer, never the active model"
    evidence = model_version.promotion_evidence or {}
    if "passed" not in evidence:
        return False, "no promotion evidence recorded for this version (trained before the rule): retrain it"
    if not evidence["passed"]:
        return False, promotion.summary(evidence)
    active = ModelVersion.objects.filter(name=model_version.name, active=True).exclude(pk=model_version.pk).first()
    compared = (evidence.get("active_version") or {}).get("id")
    if active is not None and compared != active.pk:
        return False, (f"{active.label} became active after this version was compared; retrain to compare "
                       "them on the same rows")
    return True, promotion.summary(evidence)


class PromotionRefused(Exception):
    pass


@transaction.atomic
def model_version_promote(*, model_version: ModelVersion, reason: str = "") -> ModelVersion:
    """Make a version the active one of its name if its evidence passes the promotion rule; else raise
    PromotionRefused (the version keeps why in promotion_reason)."""
    ok, why = check_promotion(model_version)
    if not ok:
        ModelVersion.objects.filter(pk=model_version.pk).update(promotion_reason=f"not promoted: {why}")
        raise PromotionRefused(why)
    ModelVersion.objects.select_for_update().filter(name=model_version.name).update(active=False)
    model_version.active = True
    model_version.promotion_reason = f"promoted: {why}" + (f"; {reason}" if reason else "")
    model_version.promotion_evidence = {**model_version.promotion_evidence, "verdict": "promoted"}
    model_version.save(update_fields=["active", "promotion_reason", "promotion_evidence"])
    return model_version


def train_models(*, name: str, seed: int = 0, algorithms: tuple[str, ...] | None = None,
                 params: dict | None = None, force: bool = True, frame=None) -> dict:
    """Build the dataset, train the baseline and each algorithm, register all, promote the best that
    beats the baseline on validation. force=False skips when this data version was already trained;
    `frame` (order_features(which="finished")) lets lead time and risk share one dataset query.
    algorithms default to DEFAULT_ALGORITHMS of the target."""
    if not force and ModelVersion.objects.filter(name=name, data_version=data_version(), seed=seed).exists():
        return {"name": name, "status": "skipped", "reason": f"data version {data_version()} already trained"}
    started = time.perf_counter()
    dataset = dataset_for(name, frame=frame)
    rows = dataset.rows()
    if rows["train"] < MIN_TRAIN_ROWS or rows["validation"] < MIN_VALIDATION_ROWS:
        raise TrainingNotSupported(f"{name}: {rows} rows; need >= {MIN_TRAIN_ROWS} train and "
                                   f">= {MIN_VALIDATION_ROWS} validation rows")
    dataset_seconds = time.perf_counter() - started
    params = params or {}
    algorithms = DEFAULT_ALGORITHMS.get(name, (Algorithm.HGB, Algorithm.MLP)) if algorithms is None else algorithms
    active_before = ModelVersion.objects.filter(name=name, active=True).first()
    baselines = _register_baselines(name=name, dataset=dataset, seed=seed)
    baseline = baselines[0][0]
    reference_fit = _best_baseline(name, baselines)[1]
    candidates, fitted_candidates = [], []
    for algorithm in algorithms:
        fitted = fit_and_evaluate(name=name, algorithm=algorithm, dataset=dataset, seed=seed,
                                  params=params.get(algorithm))
        version = model_version_register(name=name, fitted=fitted, dataset=dataset, seed=seed,
                                         baseline_validation=reference_fit.metrics["validation"])
        candidates.append(version)
        fitted_candidates.append(fitted)
    _record_promotion_evidence(name=name, dataset=dataset, seed=seed, baselines=baselines,
                               candidates=list(zip(candidates, fitted_candidates, strict=True)), active=active_before)
    promoted = _promote_best(name, candidates)
    return {
        "name": name, "status": "trained", "data_version": dataset.data_version, "rows": rows,
        "dataset_seconds": round(dataset_seconds, 3), "seconds": round(time.perf_counter() - started, 3),
        "baseline": baseline.pk, "baselines": [v.pk for v, _ in baselines], "versions": [v.pk for v in candidates],
        "promoted": promoted.pk if promoted else None,
    }


# --- Promotion (mlops.promotion.RULE) ---------------------------------------------------------------

_BASELINE_DETAIL = {ModelName.LEAD_TIME: "product_median", ModelName.RISK: "product_rate",
                    ModelName.ETA: "family_phase_median"}


def _register_baselines(*, name: str, dataset: Dataset, seed: int) -> list[tuple[ModelVersion, training.Fitted]]:
    """The run's baselines, registered inactive; the first is the fallback answer (product median or rate, ETA's
    family-phase median). Lead time also gets the load-aware baseline (mlops.load_baseline), registered first so
    that the fallback stays the newest baseline version."""
    out = []
    if name == ModelName.LEAD_TIME:
        load = load_baseline.load_features(ids=dataset.frame["order_id"])
        for split in dataset.splits:
            dataset.splits[split] = load_baseline.with_load_features(dataset.splits[split], load)
        fitted = load_baseline.fit_load_aware(name=name, dataset=dataset)
        version = model_version_register(name=name, fitted=fitted, dataset=dataset, seed=seed, baseline_validation=None)
        version.promotion_reason = ("baseline (load-aware: Little's law at creation, scaled per product): a reference "
                                    "for promotion; never active")
        version.promotion_evidence = {"verdict": "baseline", "role": "reference", "baseline_kind": "load_aware"}
        version.save(update_fields=["promotion_reason", "promotion_evidence"])
        out.append((version, fitted))
    fitted = fit_and_evaluate(name=name, algorithm=Algorithm.BASELINE, dataset=dataset, seed=seed)
    version = model_version_register(name=name, fitted=fitted, dataset=dataset, seed=seed, baseline_validation=None)
    version.promotion_reason = "baseline: a reference for promotion and the fallback answer; never active"
    version.promotion_evidence = {"verdict": "baseline", "role": "fallback", "baseline_kind": _BASELINE_DETAIL[name]}
    version.save(update_fields=["promotion_reason", "promotion_evidence"])
    return [(version, fitted), *out]


def _best_baseline(name: str, baselines: list[tuple[ModelVersion, training.Fitted]]):
    """The baseline with the best validation metric (lower MAE, higher ROC AUC); ties keep the fallback."""
    regression = name in REGRESSION_TARGETS

    def key(item):
        value = item[1].metrics["validation"].get(promotion.metric_name(regression))
        if value is None:
            return np.inf
        return value if regression else -value

    return min(baselines, key=key)


def _record_promotion_evidence(*, name: str, dataset: Dataset, seed: int,
                               baselines: list[tuple[ModelVersion, training.Fitted]],
                               candidates: list[tuple[ModelVersion, training.Fitted]],
                               active: ModelVersion | None) -> None:
    """Compare every candidate with the run's best baseline and the version active before the run, all predicting
    the same validation and test rows, and store the evidence (mlops.promotion) on each candidate."""
    regression = name in REGRESSION_TARGETS
    validation, test = dataset.splits["validation"], dataset.splits["test"]
    y_validation = validation[dataset.target].to_numpy(dtype=float)
    y_test = test[dataset.target].to_numpy(dtype=float)
    best_version, best_fit = _best_baseline(name, baselines)
    references = [promotion.Reference(
        label=best_version.label, kind="baseline", version_id=best_version.pk,
        detail=best_version.promotion_evidence.get("baseline_kind", ""),
        validation=best_fit.model.predict(validation), test=best_fit.model.predict(test))]
    active_info = None
    if active is not None:
        active_info = {"id": active.pk, "label": active.label, "comparable": True}
        try:
            model = load_artifact(active)
            references.append(promotion.Reference(
                label=active.label, kind="active", version_id=active.pk, detail=active.algorithm,
                validation=model.predict(validation), test=model.predict(test)))
        except Exception as exc:  # a broken artifact, or a model of older features, cannot compete:
            # it does not answer today either (the selectors fall back to the baseline): baselines decide alone
            active_info.update(comparable=False, reason=f"{type(exc).__name__}: {exc}"[:300])
    baseline_table = [{"id": v.pk, "label": v.label, "baseline_kind": v.promotion_evidence.get("baseline_kind"),
                       "validation": f.metrics["validation"].get(promotion.metric_name(regression)),
                       "test": f.metrics["test"].get(promotion.metric_name(regression))} for v, f in baselines]
    base_rate = None if regression else float(dataset.splits["train"][dataset.target].mean())
    groups = validation["order_id"].to_numpy()
    for version, fitted in candidates:
        evidence = promotion.evaluate_candidate(
            regression=regression, y_validation=y_validation, y_test=y_test,
            validation=fitted.model.predict(validation), test=fitted.model.predict(test), references=references,
            train_base_rate=base_rate, groups=groups, seed=seed)
        evidence.update({"verdict": "passed" if evidence["passed"] else "refused", "baselines": baseline_table,
                         "best_baseline": best_version.label, "active_version": active_info})
        version.promotion_evidence = evidence
        version.save(update_fields=["promotion_evidence"])


def _validation_key(name: str, version: ModelVersion) -> float:
    metric = version.metrics.get("validation", {})
    if name in REGRESSION_TARGETS:
        return metric.get("mae") if metric.get("mae") is not None else np.inf
    return -metric["roc_auc"] if metric.get("roc_auc") is not None else np.inf


def _promote_best(name: str, candidates: list[ModelVersion]) -> ModelVersion | None:
    """Promote the candidate with the best validation metric among those whose evidence passes; the others keep
    why not (refused, or passed but not the best). With none passing, the active version (if any) stays."""
    checked = {v.pk: check_promotion(v) for v in candidates}  # before the promotion changes the active version
    eligible = [v for v in candidates if checked[v.pk][0]]
    best = min(eligible, key=lambda v: _validation_key(name, v)) if eligible else None
    for version in candidates:
        if version is best:
            model_version_promote(model_version=version, reason="best validation score among the passing candidates")
            continue
        ok, why = checked[version.pk]
        verdict = "refused"
        if ok:
            why, verdict = f"{why}, but {best.label} scored better on validation", "passed_not_chosen"
        reason = f"not promoted: {why}"
        if best is None:
            reason += "; the previously active version (if any) stays active"
        evidence = {**(version.promotion_evidence or {}), "verdict": verdict}
        ModelVersion.objects.filter(pk=version.pk).update(promotion_reason=reason, promotion_evidence=evidence)
        version.promotion_reason, version.promotion_evidence = reason, evidence
    return best


@transaction.atomic
def predictions_store_open_orders(*, as_of=None) -> dict:
    """Predict lead time and risk for every order open at as_of (the order state: not finished by then, not
    abandoned), and the remaining time (ETA, from the order's state at as_of) for the active ones (stalled
    orders get none), and replace the stored predictions (idempotent)."""
    as_of = as_of or data_as_of() or timezone.now()
    frame = order_features(which="open", as_of=as_of)
    _warm_feature_cache(frame)
    counts = {"eta": _store_eta_predictions(as_of)}
    for name in (ModelName.LEAD_TIME, ModelName.RISK):
        predictor = active_predictor(name)
        Prediction.objects.filter(name=name).delete()
        if frame.empty:
            counts[name] = 0
            continue
        values = predictor.predict(frame)
        rows = []
        for i, order in enumerate(frame.itertuples(index=False)):
            lower = upper = finish = None
            if name == ModelName.LEAD_TIME:
                lower, upper = predictor.interval(values[i])
                finish = order.created_at + timedelta(days=float(values[i]))
            rows.append(Prediction(order_id=order.order_id, name=name, model_version=predictor.version,
                                   model_label=predictor.label, value=float(values[i]), lower=lower, upper=upper,
                                   predicted_finish=finish, as_of=as_of))
        Prediction.objects.bulk_create(rows, batch_size=2000)
        counts[name] = len(rows)
    return {"as_of": as_of.isoformat() if as_of else None, "stored": counts}


def _store_eta_predictions(as_of) -> int:
    """Remaining days of every active order (eta_open_features: open at as_of, not stalled) from its state at
    as_of, with the calibrated 80% interval (mlops.intervals); predicted finish = as_of + remaining, never before
    as_of (the lower end is clipped at 0 days)."""
    frame = eta_open_features(as_of=as_of)
    Prediction.objects.filter(name=ModelName.ETA).delete()
    if frame.empty:
        return 0
    predictor = active_predictor(ModelName.ETA)
    bounds = predictor.eta_bounds(frame)
    rows = []
    for i, order_id in enumerate(frame["order_id"]):
        value, lower, upper = (float(bounds[k][i]) for k in ("point", "lower", "upper"))
        rows.append(Prediction(order_id=int(order_id), name=ModelName.ETA, model_version=predictor.version,
                               model_label=predictor.label, value=value,
                               lower=None if np.isnan(lower) else lower, upper=None if np.isnan(upper) else upper,
                               predicted_finish=as_of + timedelta(days=value), as_of=as_of))
    Prediction.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


# --- ETA: the interval's calibration and the backtest -----------------------------------------------

def eta_calibration(model, dataset: Dataset) -> dict:
    """The ETA's 80% interval calibrated on the orders after the training period (validation and test splits: the
    orders created after the training period and before the censoring cutoff; their moments weighted by recency),
    group-conditional by progress and state (mlops.intervals)."""
    import pandas as pd

    frame = intervals.recent(pd.concat([dataset.splits["validation"], dataset.splits["test"]]))
    if frame.empty:
        return {}
    return intervals.calibrate(frame, model.predict(frame), frame[dataset.target].to_numpy(dtype=float))


ETA_BACKTEST_RETRAINED = "retrained at each date"  # the same text as mlops.selectors.ETA_BACKTEST_RETRAINED


def eta_fit_known_at(*, moments, known_at, seed: int = 0) -> tuple[object, dict, dict] | None:
    """The ETA model (boosting) and its interval as they would have been trained at known_at: the moments of the
    orders finished by then (features never use anything after their moment), censored and split at known_at.
    Returns (model, calibration, dataset rows), or None when too little was known then."""
    dataset = eta_dataset(moments[moments["finished_at"] <= known_at], known_at=known_at, seed=seed)
    rows = dataset.rows()
    if rows["train"] < MIN_TRAIN_ROWS or rows["validation"] < MIN_VALIDATION_ROWS:
        return None
    model = training.HgbModel.fit(ModelName.ETA, dataset.splits["train"], dataset.target, dataset.numeric, seed,
                                  DEFAULT_HGB_PARAMS)
    return model, eta_calibration(model, dataset), rows


def _scores(rows: list[dict]) -> dict:
    """n, coverage, MAE and bias (predicted - real remaining days) of scored prediction rows."""
    scored = [r for r in rows if r["covered"] is not None]
    finished = [r for r in scored if r["error"] is not None]
    covered = sum(1 for r in scored if r["covered"])
    errors = np.array([r["error"] for r in finished], dtype=float)
    return {"n": len(scored), "covered": covered,
            "coverage": round(covered / len(scored), 4) if scored else None,
            "coverage_ci95": intervals.coverage_interval(covered, len(scored)), "finished": len(finished),
            "mae_days": round(float(np.abs(errors).mean()), 4) if len(errors) else None,
            "bias_days": round(float(errors.mean()), 4) if len(errors) else None}


def eta_backtest(*, start, weeks: int, use_active_model: bool = False, seed: int = 0) -> dict:
    """Predict the remaining time of every order open at start + k weeks (k < weeks; the order state's active
    orders; stalled ones are answered 'stalled' and counted apart) and score the answers against the real finishes.

    The model: by default retrained at each date with only what was known then (eta_fit_known_at: orders finished
    by the date, features at moments before it; its interval calibrated on the orders after its training period,
    all before the date). use_active_model: the active version instead, only at dates after everything it was
    trained and calibrated on (its calibration's known_until); earlier dates are skipped, and the result says so.

    Scoring: an order that finished is covered when its real remaining days lie in the 80% interval (MAE and bias
    of the point too); one that never finished is a miss once the interval's upper end is before the data's
    as-of, else its outcome is unknown: excluded and counted. Progress buckets and states are at the date."""
    last_known = data_as_of()
    dates = [start + timedelta(days=7 * k) for k in range(weeks)]
    moments, predictor, known_until = None, None, None
    if use_active_model:
        predictor = active_predictor(ModelName.ETA)
        cal = predictor.calibration
        known_until = cal.get("known_until") or (predictor.version.data_as_of.isoformat()
                                                 if predictor.version and predictor.version.data_as_of else None)
        source = f"active model {predictor.label}" + (f" (knows facts up to {known_until[:10]})" if known_until else "")
    else:
        moments = eta_features(seed=seed)  # one query: every finished order's moments, cut per date below
        source = ETA_BACKTEST_RETRAINED
    rows, weekly, models, checks = [], [], [], []
    for when in dates:
        week = {"date": when.isoformat(), "open": 0, "stalled": 0, "skipped": None}
        if use_active_model:
            if known_until and when < datetime.fromisoformat(known_until):
                week["skipped"] = f"before {known_until[:10]}: the active model knew facts after this date"
                weekly.append(week)
                continue
            model, calibration = predictor.model, predictor.calibration
        else:
            fitted = eta_fit_known_at(moments=moments, known_at=when, seed=seed)
            if fitted is None:
                week["skipped"] = "too few orders finished by this date to train"
                weekly.append(week)
                continue
            model, calibration, split_rows = fitted
            models.append({"date": when.isoformat(), "rows": split_rows,
                           "calibration_n": calibration.get("n"), "known_until": calibration.get("known_until")})
        frame = eta_open_features(as_of=when, with_stalled=True)
        week["stalled"] = int(frame["stalled"].sum()) if len(frame) else 0
        frame = frame[frame["stalled"] == 0].reset_index(drop=True) if len(frame) else frame
        week["open"] = len(frame)
        if frame.empty:
            weekly.append({**week, **_scores([])})
            continue
        pred = model.predict(frame)
        b = intervals.bounds(calibration, frame, pred)
        checks.append({"date": when.isoformat(), "by_bucket": intervals.shift_check(calibration, frame, pred)})
        bucket = intervals.buckets(frame, calibration.get("typical_steps", intervals.DEFAULT_TYPICAL_STEPS))
        state = intervals.states(frame)
        finishes = dict(ManufacturingOrder.objects.filter(id__in=frame["order_id"].tolist())
                        .values_list("id", "finished_at"))
        week_rows = []
        for i, order_id in enumerate(frame["order_id"]):
            finish = finishes.get(int(order_id))
            lower, upper, point = float(b["lower"][i]), float(b["upper"][i]), float(b["point"][i])
            row = {"date": when.isoformat(), "order_id": int(order_id), "bucket": str(bucket[i]), "state": state[i],
                   "predicted_days": round(point, 4), "lower": round(lower, 4), "upper": round(upper, 4),
                   "actual_days": None, "covered": None, "error": None, "outcome": "finished"}
            if finish is not None:
                actual = (finish - when).total_seconds() / 86400.0
                row.update(actual_days=round(actual, 4), covered=bool(lower <= actual <= upper),
                           error=point - actual)
            elif last_known is not None and when + timedelta(days=upper) < last_known:
                row.update(covered=False, outcome="never_finished")
            else:
                row["outcome"] = "unknown"
            week_rows.append(row)
        rows.extend(week_rows)
        weekly.append({**week, **_scores(week_rows)})
    overall = _scores(rows)
    return {
        "start": start, "weeks": weeks, "model_source": source, "data_as_of": last_known, **overall,
        "never_finished": sum(1 for r in rows if r["outcome"] == "never_finished"),
        "unknown": sum(1 for r in rows if r["outcome"] == "unknown"),
        "stalled": sum(w["stalled"] for w in weekly),
        "by_bucket": {k: _scores([r for r in rows if r["bucket"] == k]) for k in intervals.BUCKETS},
        "by_state": {k: _scores([r for r in rows if r["state"] == k]) for k in intervals.STATES.values()},
        "weekly": weekly,
        "details": {
            "interval": intervals.DESCRIPTION, "alpha": intervals.ALPHA, "bucket_rule": intervals.BUCKET_RULE,
            "scoring": ("covered: the real remaining days in the 80% interval; an order never finished is a miss once "
                        "the interval's upper end is before the data's as-of, else unknown (excluded, counted); MAE "
                        "and bias (predicted - real days) over the finished ones; stalled orders are answered "
                        "'stalled' and excluded"),
            "models": models, "known_until": known_until,
            "calibration_checks": checks,  # per date and bucket: the calibration group's size and profile vs the orders
            "predictions": [{k: v for k, v in r.items() if k != "error"} for r in rows],
        },
    }


@transaction.atomic
def eta_backtest_record(*, start, weeks: int, use_active_model: bool = False, seed: int = 0):
    """Run the ETA backtest and store it (mlops.models.EtaBacktest); every ETA shows the latest coverage."""
    result = eta_backtest(start=start, weeks=weeks, use_active_model=use_active_model, seed=seed)
    record = EtaBacktest.objects.create(
        start=start, weeks=weeks, model_source=result["model_source"][:200], data_as_of=result["data_as_of"],
        scored=result["n"], covered=result["covered"], coverage=result["coverage"], finished=result["finished"],
        mae_days=result["mae_days"], bias_days=result["bias_days"], never_finished=result["never_finished"],
        unknown=result["unknown"], stalled=result["stalled"], by_bucket=result["by_bucket"],
        by_state=result["by_state"], weekly=result["weekly"], details=result["details"],
    )
    bump_data_version()  # the pages and answers that show the latest score
    return record, result


def _warm_feature_cache(frame) -> None:
    """Pre-fill the per-order feature cache for open orders (what predict-by-id reads)."""
    order_feature_frame.prime(({"order_id": int(oid)}, frame.iloc[[i]].reset_index(drop=True))
                              for i, oid in enumerate(frame["order_id"]))


def train_all_models(*, seed: int = 0, force: bool = False) -> dict:
    """Nightly: train every target (skipping a target whose data is too thin), then store predictions."""
    results = {}
    already = not force and ModelVersion.objects.filter(data_version=data_version(), seed=seed).values("name")
    shared = {ModelName.LEAD_TIME, ModelName.RISK}  # the targets built on order_features rows
    done = {row["name"] for row in already} if already else set()
    frame = None if shared <= done else order_features(which="finished")
    for name in TARGETS:
        try:
            results[name] = train_models(name=name, seed=seed, force=force,
                                         frame=frame if name in shared else None)
        except TrainingNotSupported as exc:
            logger.warning("training skipped", extra={"model": name, "reason": str(exc)})
            results[name] = {"name": name, "status": "not_supported", "reason": str(exc)}
    results["predictions"] = predictions_store_open_orders()
    return results


TRAINING_DONE = (TrainingStatus.SUCCEEDED, TrainingStatus.NOT_SUPPORTED, TrainingStatus.FAILED)


def training_request(*, name: str, seed: int = 0, user=None) -> TrainingJob:
    """Record a "train now" job and queue mlops.tasks.train_job_task for it (eager without Redis: it runs here).

    When the broker cannot take it, the job is failed with the reason and QueueUnavailable (carrying the job's
    id as run_id) goes on up."""
    from prodplan.task_queue import QueueUnavailable, enqueue, task_named

    job = TrainingJob.objects.create(name=name, seed=seed,
                                     requested_by=user if user is not None and user.is_authenticated else None)
    try:
        enqueue(task_named("mlops.tasks.train_job_task"), job.pk)  # tasks import services, never the reverse
    except QueueUnavailable as exc:
        TrainingJob.objects.filter(pk=job.pk, status=TrainingStatus.QUEUED).update(
            status=TrainingStatus.FAILED, error=str(exc), finished_at=timezone.now())
        raise QueueUnavailable(str(exc), run_id=job.pk) from exc
    job.refresh_from_db()
    return job


def training_job_execute(*, job_id: int) -> dict:
    """Run a queued training job: train_models (baselines, candidates, promotion on evidence) and record how it
    ended on the job (trained, not enough data, failed with the reason). A job no longer queued is left as is."""
    claimed = TrainingJob.objects.filter(pk=job_id, status=TrainingStatus.QUEUED).update(
        status=TrainingStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        return {"job_id": job_id, "status": "skipped", "detail": "not queued"}
    job = TrainingJob.objects.get(pk=job_id)
    status, error, result = TrainingStatus.SUCCEEDED, "", {}
    try:
        result = train_models(name=job.name, seed=job.seed, force=True)
    except TrainingNotSupported as exc:
        status, error = TrainingStatus.NOT_SUPPORTED, str(exc)
    except Exception as exc:  # recorded on the job, which the page shows; the nightly task trains again
        logger.exception("training job failed", extra={"job_id": job_id})
        status, error = TrainingStatus.FAILED, str(exc)[:2000]
    TrainingJob.objects.filter(pk=job_id).update(status=status, error=error, finished_at=timezone.now(),
                                                 result=_json_safe(result))
    return {"job_id": job_id, "status": str(status), "error": error}


def training_job_skipped(*, job_id: int, detail: str) -> None:
    """Another training job held the single-instance lock: this one is failed, saying so."""
    TrainingJob.objects.filter(pk=job_id, status=TrainingStatus.QUEUED).update(
        status=TrainingStatus.FAILED, error=detail, finished_at=timezone.now())


def _json_safe(value):
    import json

    return json.loads(json.dumps(value, default=str))
