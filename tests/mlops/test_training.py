"""Training: baseline values, reproducibility, promotion rules, fallback to the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from mlops import services
from mlops.choices import Algorithm
from mlops.datasets import lead_time_dataset, risk_dataset
from mlops.models import ModelVersion
from mlops.selectors import active_predictor, predict
from tests.mlops.conftest import FAST


@pytest.mark.django_db
def test_baseline_is_product_median_then_family_then_global(factory):
    ds = lead_time_dataset()
    fitted = services.fit_and_evaluate(name="leadtime", algorithm=Algorithm.BASELINE, dataset=ds)
    train = ds.splits["train"]
    for product_id, rows in train.groupby("product_id"):
        assert fitted.model.params["product"][str(product_id)] == pytest.approx(float(np.median(rows["lead_time_days"])))
    test = ds.splits["test"].copy()
    test.loc[test.index[0], "product_id"] = 424242  # never seen: falls back to the family, then global
    pred = fitted.model.predict(test)
    assert pred[0] == pytest.approx(float(np.median(train.loc[train["family"] == test["family"].iloc[0], "lead_time_days"])))
    test.loc[test.index[0], "family"] = "NOPE"
    assert fitted.model.predict(test)[0] == pytest.approx(float(train["lead_time_days"].median()))
    mae = float(np.mean(np.abs(fitted.model.predict(ds.splits["test"]) - ds.splits["test"]["lead_time_days"])))
    assert fitted.metrics["test"]["mae"] == pytest.approx(mae, abs=1e-4)
    # risk baseline: smoothed product rate, deterministic
    rds = risk_dataset()
    a = services.fit_and_evaluate(name="risk", algorithm=Algorithm.BASELINE, dataset=rds)
    b = services.fit_and_evaluate(name="risk", algorithm=Algorithm.BASELINE, dataset=rds)
    assert a.model.params == b.model.params and a.metrics == b.metrics


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", [Algorithm.HGB, Algorithm.MLP])
def test_training_is_reproducible_with_the_same_seed(factory, algorithm):
    ds = lead_time_dataset()
    runs = [services.fit_and_evaluate(name="leadtime", algorithm=algorithm, dataset=ds, seed=7,
                                      params=FAST[algorithm]) for _ in range(2)]
    test = ds.splits["test"]
    np.testing.assert_array_equal(runs[0].model.predict(test), runs[1].model.predict(test))
    assert runs[0].metrics == runs[1].metrics
    assert runs[0].importance == runs[1].importance


@pytest.mark.django_db
def test_models_learn_the_load_and_the_load_aware_baseline_is_their_reference(factory):
    """The factory's lead time follows its load: the candidates learn it (far below the product median), but the
    load-aware baseline (Little's law at creation) knows it too, so candidates are compared with it, and promoted
    only when their evidence passes."""
    result = services.train_models(name="leadtime", params=FAST)
    versions = {v.pk: v for v in ModelVersion.objects.filter(name="leadtime")}
    median, load_aware = (versions[pk] for pk in sorted(result["baselines"], key=lambda pk: pk != result["baseline"]))
    assert load_aware.params["kind"] == "load_aware" and "kind" not in median.params
    assert load_aware.metrics["validation"]["mae"] < median.metrics["validation"]["mae"]
    hgb = next(versions[pk] for pk in result["versions"] if versions[pk].algorithm == Algorithm.HGB)
    assert hgb.metrics["validation"]["mae"] < 0.8 * median.metrics["validation"]["mae"]
    for pk in result["versions"]:
        evidence = versions[pk].promotion_evidence
        assert evidence["best_baseline"] == load_aware.label
        assert evidence["comparisons"][0]["reference_id"] == load_aware.pk
        assert versions[pk].metrics["baseline_validation"] == load_aware.metrics["validation"]
        assert versions[pk].active == (pk == result["promoted"])
        assert (evidence["verdict"] == "promoted") == (pk == result["promoted"])
    passed = [pk for pk in result["versions"] if versions[pk].promotion_evidence["passed"]]
    assert (result["promoted"] is None) == (not passed)


@pytest.mark.django_db
def test_a_learnt_signal_is_promoted_with_its_evidence(trained):
    for name in ("leadtime", "risk"):
        baseline = ModelVersion.objects.get(pk=trained[name]["baseline"])
        assert not baseline.active and baseline.promotion_evidence["verdict"] == "baseline"
        others = ModelVersion.objects.filter(name=name).exclude(pk__in=[trained[name]["promoted"] or 0,
                                                                         *trained[name]["baselines"]])
        assert all(v.promotion_reason.startswith("not promoted") for v in others)
    lead = ModelVersion.objects.get(name="leadtime", active=True)
    assert lead.pk == trained["leadtime"]["promoted"]
    assert lead.promotion_reason.startswith("promoted: validation MAE margin")
    assert lead.artifact_sha256 and lead.data_version >= 1
    assert lead.metrics["validation"]["mae"] < 0.8 * lead.metrics["baseline_validation"]["mae"]
    assert lead.promotion_evidence["comparisons"][0]["validation"]["low"] > 0
    assert {"q10", "q90"} <= set(lead.residual_quantiles)
    assert lead.importance[0]["feature"] == "created_weekday" and lead.importance[0]["importance"] > 0


@pytest.mark.django_db
def test_registry_refuses_a_model_worse_than_the_baseline(factory):
    # a deliberately crippled boosting model (one shallow tree) cannot beat the product median
    result = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,),
                                   params={"hgb": {"max_iter": 1, "max_depth": 1, "learning_rate": 0.01}})
    version = ModelVersion.objects.get(pk=result["versions"][0])
    assert result["promoted"] is None and not version.active
    assert version.promotion_reason.startswith("not promoted: validation MAE")
    assert version.metrics["validation"]["mae"] >= version.metrics["baseline_validation"]["mae"]
    with pytest.raises(services.PromotionRefused):
        services.model_version_promote(model_version=version)
    assert not ModelVersion.objects.filter(name="leadtime", active=True).exists()
    assert active_predictor("leadtime").is_baseline
    baseline = ModelVersion.objects.get(pk=result["baseline"])
    with pytest.raises(services.PromotionRefused):
        services.model_version_promote(model_version=baseline)


@pytest.mark.django_db
def test_fallback_to_baseline_when_the_artifact_is_corrupt_or_missing(trained, settings):
    from pathlib import Path

    active = ModelVersion.objects.get(name="leadtime", active=True)
    baseline = ModelVersion.objects.get(pk=trained["leadtime"]["baseline"])
    ds = lead_time_dataset()
    row = ds.splits["test"].iloc[0]
    order_id = int(row["order_id"])
    expected = baseline.params["product"].get(str(int(row["product_id"])))
    assert predict(name="leadtime", order_id=order_id)["model"]["label"] == active.label
    path = Path(settings.MODEL_ARTIFACT_DIR) / active.artifact_path
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    answer = predict(name="leadtime", order_id=order_id)
    assert answer["model"]["label"] == "baseline" and "checksum" in answer["model"]["fallback_reason"]
    assert answer["lead_time_days"] == pytest.approx(expected, abs=1e-4)
    path.unlink()
    answer = predict(name="leadtime", order_id=order_id)
    assert answer["model"]["label"] == "baseline" and "missing" in answer["model"]["fallback_reason"]
    assert answer["lead_time_days"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.django_db
def test_live_baseline_when_nothing_is_trained(factory):
    answer = predict(name="risk", features={"family": "K1", "product_id": 1})
    assert answer["model"]["label"] == "baseline" and "no baseline registered" in answer["model"]["fallback_reason"]
    ds = risk_dataset()  # the live baseline uses all finished orders: independent check of the rate
    frame = ds.frame
    from mlops.datasets import order_features

    every = order_features(which="finished")
    assert len(every) >= len(frame)
    assert answer["probability"] == pytest.approx(float(every.loc[every["product_id"] == 1, "bad"].mean()), abs=1e-4)
