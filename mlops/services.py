"""Writes of the mlops domain: train and register model versions, promote them, store predictions."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from mlops import training
from mlops.choices import REGRESSION_TARGETS, Algorithm, ModelName
from mlops.datasets import Dataset, dataset_for, eta_open_features, order_features
from mlops.models import ModelVersion, Prediction

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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    if name in REGRESSION_TARGETS and len(validation):
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
    """May this version become active? Only a non-baseline that beats its run's baseline on validation."""
    if model_version.algorithm == Algorithm.BASELINE:
        return False, "the baseline is the fallback, never the active model"
    baseline = model_version.metrics.get("baseline_validation")
    if not baseline:
        return False, "no baseline validation metrics recorded for this version"
    return training.beats(model_version.name, model_version.metrics.get("validation", {}), baseline)


class PromotionRefused(Exception):
    pass


@transaction.atomic
def model_version_promote(*, model_version: ModelVersion, reason: str = "") -> ModelVersion:
    """Make a version the active one of its name, if it beats the baseline; else raise PromotionRefused."""
    ok, why = check_promotion(model_version)
    if not ok:
        ModelVersion.objects.filter(pk=model_version.pk).update(promotion_reason=f"not promoted: {why}")
        raise PromotionRefused(why)
    ModelVersion.objects.select_for_update().filter(name=model_version.name).update(active=False)
    model_version.active = True
    model_version.promotion_reason = f"promoted: {why}" + (f"; {reason}" if reason else "")
    model_version.save(update_fields=["active", "promotion_reason"])
    return model_version


def train_models(*, name: str, seed: int = 0, algorithms: tuple[str, ...] | None = None,
                 params: dict | None = None, force: bool = True, frame=None) -> dict:
    """Build the dataset, train the baseline and each algorithm, register all, promote the best that
    beats the baseline on validation. force=False skips when this data version was already trained;
    `frame` (order_features(which="finished")) lets lead time and risk share one dataset query.
    algorithms default to DEFAULT_ALGORITHMS of the target."""
    from prodplan.cache import data_version

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
    baseline_fit = fit_and_evaluate(name=name, algorithm=Algorithm.BASELINE, dataset=dataset, seed=seed)
    baseline = model_version_register(name=name, fitted=baseline_fit, dataset=dataset, seed=seed,
                                      baseline_validation=None)
    ModelVersion.objects.filter(pk=baseline.pk).update(
        promotion_reason="baseline: the reference for promotion and the fallback answer; never active")
    candidates = []
    for algorithm in algorithms:
        fitted = fit_and_evaluate(name=name, algorithm=algorithm, dataset=dataset, seed=seed,
                                  params=params.get(algorithm))
        version = model_version_register(name=name, fitted=fitted, dataset=dataset, seed=seed,
                                         baseline_validation=baseline_fit.metrics["validation"])
        candidates.append(version)
    promoted = _promote_best(name, candidates)
    return {
        "name": name, "status": "trained", "data_version": dataset.data_version, "rows": rows,
        "dataset_seconds": round(dataset_seconds, 3), "seconds": round(time.perf_counter() - started, 3),
        "baseline": baseline.pk, "versions": [v.pk for v in candidates],
        "promoted": promoted.pk if promoted else None,
    }


def _validation_key(name: str, version: ModelVersion) -> float:
    metric = version.metrics.get("validation", {})
    if name in REGRESSION_TARGETS:
        return metric.get("mae") if metric.get("mae") is not None else np.inf
    return -metric["roc_auc"] if metric.get("roc_auc") is not None else np.inf


def _promote_best(name: str, candidates: list[ModelVersion]) -> ModelVersion | None:
    eligible = [v for v in candidates if check_promotion(v)[0]]
    best = min(eligible, key=lambda v: _validation_key(name, v)) if eligible else None
    for version in candidates:
        if version is best:
            model_version_promote(model_version=version, reason="best validation score of its training run")
            continue
        ok, why = check_promotion(version)
        if ok:
            why = f"{why}, but {best.label} scored better on validation"
        reason = f"not promoted: {why}"
        if best is None:
            reason += "; the previously active version (if any) stays active"
        ModelVersion.objects.filter(pk=version.pk).update(promotion_reason=reason)
        version.promotion_reason = reason
    return best


@transaction.atomic
def predictions_store_open_orders(*, as_of=None) -> dict:
    """Predict lead time and risk for every order open at as_of (the order state: not finished by then, not
    abandoned), and the remaining time (ETA, from the order's state at as_of) for the active ones (stalled
    orders get none), and replace the stored predictions (idempotent)."""
    from mlops.datasets import data_as_of
    from mlops.selectors import active_predictor

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
    as_of; predicted finish = as_of + remaining."""
    from mlops.selectors import active_predictor

    frame = eta_open_features(as_of=as_of)
    Prediction.objects.filter(name=ModelName.ETA).delete()
    if frame.empty:
        return 0
    predictor = active_predictor(ModelName.ETA)
    values = predictor.predict(frame)
    rows = []
    for order_id, value in zip(frame["order_id"], values, strict=True):
        lower, upper = predictor.interval(value)
        rows.append(Prediction(order_id=int(order_id), name=ModelName.ETA, model_version=predictor.version,
                               model_label=predictor.label, value=float(value), lower=lower, upper=upper,
                               predicted_finish=as_of + timedelta(days=float(value)), as_of=as_of))
    Prediction.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _warm_feature_cache(frame) -> None:
    """Pre-fill the per-order feature cache for open orders (what predict-by-id reads)."""
    from django.conf import settings as django_settings
    from django.core.cache import cache

    from mlops.selectors import FEATURE_CACHE
    from prodplan.cache import cache_key

    if frame.empty or not getattr(django_settings, "CACHE_ENABLED", True):
        return
    entries = {cache_key(FEATURE_CACHE, {"id": int(oid)}): frame.iloc[[i]].reset_index(drop=True)
               for i, oid in enumerate(frame["order_id"])}
    cache.set_many(entries, django_settings.CACHE_TTL_SECONDS)


def train_all_models(*, seed: int = 0, force: bool = False) -> dict:
    """Nightly: train every target (skipping a target whose data is too thin), then store predictions."""
    from prodplan.cache import data_version

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
