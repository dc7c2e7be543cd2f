"""Honest promotion: shuffled labels promote nothing, a real signal promotes with an interval above zero, a
classifier must beat the base rate's Brier score, the active model stays unless beaten, the evidence is shown."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlops import promotion, services
from mlops.choices import Algorithm
from mlops.datasets import order_features
from mlops.load_baseline import RATE_DAYS, WIP_DAYS, load_features
from mlops.models import ModelVersion
from mlops.selectors import active_predictor
from tests.mlops.builders import weekday_signal
from tests.mlops.conftest import FAST


def _failed(version: ModelVersion) -> set[str]:
    return {c["code"] for c in version.promotion_evidence["checks"] if not c["ok"]}


# --- pure functions ------------------------------------------------------------------------------

def test_weighted_auc_equals_the_auc_of_the_resampled_rows():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(float)
    p = np.round(rng.random(300) + 0.3 * y, 1)  # ties on purpose
    counts = rng.multinomial(300, np.full(300, 1 / 300), size=4).astype(float)
    got = promotion._weighted_auc(y, p, counts)
    for row, value in zip(counts.astype(int), got, strict=True):
        rows = np.repeat(np.arange(300), row)
        assert value == pytest.approx(roc_auc_score(y[rows], p[rows]))
    assert promotion.metric(False, y, p) == pytest.approx(roc_auc_score(y, p))


def test_paired_bootstrap_is_deterministic_and_resamples_whole_orders():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 10, 400)
    candidate, reference = y + rng.normal(0, 1.0, 400), y + rng.normal(0, 1.5, 400)
    a = promotion.paired_bootstrap(True, y, candidate, reference, seed=4)
    b = promotion.paired_bootstrap(True, y, candidate, reference, seed=4)
    assert a == b and a["resamples_used"] == 1000 and a["low"] < a["margin"] < a["high"]
    assert a["margin"] == pytest.approx(np.mean(np.abs(reference - y)) - np.mean(np.abs(candidate - y)))
    # 40 orders of 10 rows each whose errors move together: resampling whole orders gives a wider interval than
    # counting the 400 rows as independent evidence
    groups = np.repeat(np.arange(40), 10)
    candidate, reference = y + np.repeat(rng.normal(0, 1.0, 40), 10), y + np.repeat(rng.normal(0, 1.2, 40), 10)
    rows = promotion.paired_bootstrap(True, y, candidate, reference, seed=4)
    orders = promotion.paired_bootstrap(True, y, candidate, reference, groups=groups, seed=4)
    assert orders["groups"] == 40 and rows["groups"] == 400 and orders["margin"] == pytest.approx(rows["margin"])
    assert orders["high"] - orders["low"] > 2 * (rows["high"] - rows["low"])


def test_a_classifier_worse_than_the_base_rate_brier_is_refused():
    """Ranks well (its AUC beats the reference's by a clear interval) but says 0.9 to every order: the Brier check
    alone refuses it."""
    rng = np.random.default_rng(3)
    y_val, y_test = (rng.random(400) < 0.2).astype(float), (rng.random(400) < 0.2).astype(float)

    def overconfident(y):
        return 0.85 + 0.1 * y + rng.uniform(0, 0.04, len(y))

    def weak(y):
        return np.clip(0.2 + 0.05 * y + rng.normal(0, 0.1, len(y)), 0, 1)

    ref = promotion.Reference(label="risk:v1:baseline", kind="baseline", version_id=1,
                              validation=weak(y_val), test=weak(y_test))
    evidence = promotion.evaluate_candidate(regression=False, y_validation=y_val, y_test=y_test,
                                            validation=overconfident(y_val), test=overconfident(y_test),
                                            references=[ref], train_base_rate=0.2)
    failed = {c["code"] for c in evidence["checks"] if not c["ok"]}
    assert failed == {"brier_validation", "brier_test"} and not evidence["passed"]
    assert evidence["comparisons"][0]["validation"]["low"] > 0
    assert evidence["brier"]["validation"]["candidate"] > evidence["brier"]["validation"]["base_rate"]
    assert evidence["brier"]["validation"]["base_rate"] == pytest.approx(float(np.mean((0.2 - y_val) ** 2)))
    assert "Brier" in promotion.summary(evidence)


# --- through train_models on a built factory -------------------------------------------------------

@pytest.mark.django_db
def test_shuffled_labels_promote_nothing(factory):
    frame = order_features(which="finished")
    rng = np.random.default_rng(11)
    shuffled = frame.copy()
    shuffled["lead_time_days"] = rng.permutation(frame["lead_time_days"].to_numpy())
    shuffled["bad"] = rng.permutation(frame["bad"].to_numpy())
    point_wins = 0
    for name in ("leadtime", "risk"):
        result = services.train_models(name=name, frame=shuffled)  # default (not fast) parameters: more to overfit
        assert result["promoted"] is None
        assert not ModelVersion.objects.filter(name=name, active=True).exists()
        assert active_predictor(name).is_baseline
        for pk in result["versions"]:
            version = ModelVersion.objects.get(pk=pk)
            evidence = version.promotion_evidence
            assert evidence["verdict"] == "refused" and evidence["passed"] is False
            assert "validation_margin" in _failed(version)
            margin = evidence["comparisons"][0]["validation"]
            assert margin["n"] == result["rows"]["validation"] and margin["resamples"] == 1000
            assert margin["low"] <= 0 and not margin["excludes_zero"]
            assert version.promotion_reason.startswith("not promoted:")
            point_wins += margin["margin"] > 0
    # the old rule (validation point estimate only) would have promoted at least one of these noise fits
    assert point_wins >= 1


@pytest.mark.django_db
def test_a_real_signal_promotes_with_an_interval_above_zero_and_the_active_model_stays_unless_beaten(factory):
    frame = weekday_signal(order_features(which="finished"))
    first = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,), params=FAST, frame=frame)
    active = ModelVersion.objects.get(name="leadtime", active=True)
    assert active.pk == first["promoted"] == first["versions"][0]
    evidence = active.promotion_evidence
    assert evidence["verdict"] == "promoted" and evidence["passed"] and evidence["active_version"] is None
    [comparison] = evidence["comparisons"]  # no version was active: the best baseline only
    assert comparison["reference_kind"] == "baseline" and comparison["reference"] == evidence["best_baseline"]
    assert comparison["validation"]["low"] > 0 and comparison["validation"]["excludes_zero"]
    assert comparison["test"]["not_worse"]
    assert {b["baseline_kind"] for b in evidence["baselines"]} == {"product_median", "load_aware"}
    assert active.promotion_reason.startswith("promoted: validation MAE margin")
    # the fallback answer stays the product median, the newest baseline version
    baseline = ModelVersion.objects.get(pk=first["baseline"])
    assert "kind" not in baseline.params and baseline.promotion_evidence["role"] == "fallback"
    [load_aware] = ModelVersion.objects.filter(pk__in=first["baselines"]).exclude(pk=baseline.pk)
    assert load_aware.params["kind"] == "load_aware" and load_aware.version < baseline.version
    assert active_predictor("leadtime").version.pk == active.pk

    # retrained on the same data with the same seed: the candidate predicts exactly as the active version does, so
    # it beats the baselines but not the active model, which stays
    second = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,), params=FAST, frame=frame)
    assert second["promoted"] is None
    assert ModelVersion.objects.get(name="leadtime", active=True).pk == active.pk
    candidate = ModelVersion.objects.get(pk=second["versions"][0])
    by_kind = {c["reference_kind"]: c for c in candidate.promotion_evidence["comparisons"]}
    assert by_kind["baseline"]["validation"]["excludes_zero"]
    assert by_kind["active"]["reference_id"] == active.pk and by_kind["active"]["validation"]["margin"] == 0
    assert not by_kind["active"]["validation"]["excludes_zero"]
    assert _failed(candidate) == {"validation_margin"}
    assert candidate.promotion_evidence["verdict"] == "refused"
    with pytest.raises(services.PromotionRefused):
        services.model_version_promote(model_version=candidate)


@pytest.mark.django_db
def test_evidence_compared_with_an_older_active_version_cannot_promote(factory):
    frame = weekday_signal(order_features(which="finished"))
    first = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,), params=FAST, frame=frame)
    stale = ModelVersion.objects.get(pk=first["versions"][0])
    # another version became active after this one was compared
    ModelVersion.objects.filter(pk=stale.pk).update(active=False)
    other = ModelVersion.objects.create(name="leadtime", version=99, algorithm=Algorithm.HGB, data_version=1,
                                        active=True)
    ok, why = services.check_promotion(ModelVersion.objects.get(pk=stale.pk))
    assert not ok and other.label in why
    legacy = ModelVersion.objects.create(name="leadtime", version=100, algorithm=Algorithm.HGB, data_version=1)
    assert services.check_promotion(legacy) == (
        False, "no promotion evidence recorded for this version (trained before the rule): retrain it")


@pytest.mark.django_db
def test_load_features_count_only_what_was_known_at_creation(factory):
    from orders.models import ManufacturingOrder

    orders = list(ManufacturingOrder.objects.values("id", "created_at", "finished_at"))
    probes = [o for o in orders if o["id"] % 37 == 0]
    got = load_features(ids=[o["id"] for o in probes]).set_index("order_id")
    assert len(got) == len(probes)
    for probe in probes:
        t = probe["created_at"]
        wip = sum(1 for o in orders if o["created_at"] < t and o["created_at"] >= t - timedelta(days=WIP_DAYS)
                  and (o["finished_at"] is None or o["finished_at"] >= t))
        done = sum(1 for o in orders if o["finished_at"] is not None and t - timedelta(days=RATE_DAYS)
                   <= o["finished_at"] < t)
        row = got.loc[probe["id"]]
        assert (row["wip"], row["completions"]) == (wip, done)
        expected = wip / (done / RATE_DAYS) if done else None
        assert (np.isnan(row["little_days"]) if expected is None else row["little_days"] == pytest.approx(expected))


# --- shown on the page and in the API --------------------------------------------------------------

@pytest.mark.django_db
def test_the_models_page_and_the_api_show_each_promotion_evidence(factory, client):
    from django.contrib.auth.models import User
    from django.utils import formats

    frame = weekday_signal(order_features(which="finished"))
    result = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,), params=FAST, frame=frame)
    active = ModelVersion.objects.get(pk=result["promoted"])
    client.force_login(User.objects.create_user("viewer-evidence", password="pw-viewer-123"))
    html = client.get("/models/").content.decode()
    assert 'id="promotion-rule"' in html
    assert html.count('data-verdict="promoted"') == 2  # the active panel and its registry row
    assert html.count('data-verdict="baseline"') == 2  # the two lead-time baselines
    validation = active.promotion_evidence["comparisons"][0]["validation"]
    low, high = (formats.number_format(round(validation[k], 3), 3) for k in ("low", "high"))
    assert "," in low and f'<span class="interval">[{low}; {high}]</span>' in html
    assert "{&#x27;" not in html and "{'" not in html  # no raw dict dumps

    listing = client.get("/api/ml/models", {"name": "leadtime"}).json()["results"]
    shown = {m["id"]: m["promotion_evidence"] for m in listing}
    assert shown[active.pk]["verdict"] == "promoted"
    assert shown[active.pk]["comparisons"][0]["validation"]["low"] == pytest.approx(validation["low"])
    assert shown[result["baseline"]]["verdict"] == "baseline"


@pytest.mark.django_db
def test_of_two_passing_candidates_the_one_not_chosen_says_so(factory):
    frame = weekday_signal(order_features(which="finished"))
    result = services.train_models(name="leadtime", algorithms=(Algorithm.HGB, Algorithm.HGB), params=FAST,
                                   frame=frame)
    first, second = (ModelVersion.objects.get(pk=pk) for pk in result["versions"])
    assert result["promoted"] == first.pk and first.active and not second.active
    assert second.promotion_evidence["passed"] and second.promotion_evidence["verdict"] == "passed_not_chosen"
    assert second.promotion_reason.startswith("not promoted: validation MAE margin")
    assert f"but {first.label} scored better on validation" in second.promotion_reason


@pytest.mark.django_db
def test_an_active_version_that_cannot_predict_is_replaced_on_the_baselines_evidence(factory, settings):
    from pathlib import Path

    frame = weekday_signal(order_features(which="finished"))
    first = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,), params=FAST, frame=frame)
    broken = ModelVersion.objects.get(pk=first["promoted"])
    (Path(settings.MODEL_ARTIFACT_DIR) / broken.artifact_path).unlink()  # it no longer answers (baseline fallback)
    second = services.train_models(name="leadtime", algorithms=(Algorithm.HGB,), params=FAST, frame=frame, seed=1)
    replacement = ModelVersion.objects.get(name="leadtime", active=True)
    assert replacement.pk == second["promoted"] != broken.pk
    evidence = replacement.promotion_evidence
    assert evidence["active_version"]["id"] == broken.pk and not evidence["active_version"]["comparable"]
    assert "missing" in evidence["active_version"]["reason"]
    assert [c["reference_kind"] for c in evidence["comparisons"]] == ["baseline"]
