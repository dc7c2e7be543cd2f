"""Remaining time (ETA): boundary features without leakage, baseline, reproducibility, fallback, predict endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops import services
from mlops.choices import Algorithm
from mlops.datasets import (
    ETA_NUMERIC,
    data_as_of,
    eta_dataset,
    eta_features,
    eta_open_features,
    order_features,
)
from mlops.models import ModelVersion, Prediction
from mlops.selectors import explain, predict
from orders.models import ManufacturingOrder, OrderPhase, Phase, Product, RouteStep
from tests.conftest import clear_caches
from tests.mlops.builders import empty_domain_tables
from tests.mlops.conftest import FAST

T = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
D = timedelta(days=1)
FEATURES = ["family", "product_id", *ETA_NUMERIC]


def _order(oid, created, finished, product=1):
    return ManufacturingOrder(id=oid, created_at=created, finished_at=finished, product_id=product,
                              is_open=finished is None,
                              lead_time_days=(finished - created).total_seconds() / 86400 if finished else None)


def _phase(pid, oid, phase_id, started, ended):
    return OrderPhase(id=pid, order_id=oid, phase_id=phase_id, sequence=1, started_at=started, ended_at=ended,
                      event_time=ended or started, is_open=ended is None, is_done=ended is not None)


def _constructed_case(*, x_finish=T + 5 * D, order4_finish=T + 2 * D, later_orders=()):
    """Order X (id 1, product 1 of family K1, route of 4 phases) created at T, phases done at T+1d and T+3d.
    Around it: history finished before T, load open across the boundaries, orders created after them."""
    empty_domain_tables()
    Phase.objects.bulk_create([Phase(id=i, name=f"P{i}", sequence=i) for i in (10, 20, 30, 40)])
    Product.objects.bulk_create([Product(id=1, name="K1 A", family="K1"), Product(id=2, name="K1 B", family="K1")])
    RouteStep.objects.bulk_create([RouteStep(product_id=1, phase_id=p, sequence=i)
                                   for i, p in enumerate((10, 20, 30, 40))])
    ManufacturingOrder.objects.bulk_create([
        _order(1, T, x_finish),                        # X
        _order(2, T - 10 * D, T - 4 * D),              # K1, finished before T: history (6 days)
        _order(3, T - 20 * D, T - 12 * D, product=2),  # K1, finished before T: history (8 days)
        _order(4, T - 3 * D, order4_finish),           # open at T+1d; finished at T+2d: history at T+3d
        _order(5, T - 1 * D, None),                    # still open
        _order(6, T + 1.5 * D, T + 4 * D),             # created between the boundaries
        *later_orders,
    ])
    OrderPhase.objects.bulk_create([
        _phase(100, 1, 10, T, T + 1 * D),
        _phase(101, 1, 20, T + 1 * D, T + 3 * D),
        _phase(102, 1, 30, T + 3 * D, x_finish - 0.5 * D),
        _phase(103, 5, 20, T - 1 * D, None),           # in progress: not a done phase of order 5
        _phase(104, 5, 10, T - 1 * D, T + 0.5 * D),
    ])


def _boundaries_of_x() -> pd.DataFrame:
    frame = eta_features()
    return frame[frame["order_id"] == 1].set_index("done_phases", drop=False)


@pytest.mark.django_db
def test_boundary_features_use_only_what_is_known_at_the_boundary():
    _constructed_case()
    x = _boundaries_of_x()
    assert list(x.index) == [0, 1, 2, 3]
    assert list(x["last_phase_id"]) == [-1, 10, 20, 30]
    assert list(x["remaining_days"]) == pytest.approx([5.0, 4.0, 2.0, 0.5])
    assert list(x["elapsed_days"]) == pytest.approx([0.0, 1.0, 3.0, 4.5])
    assert list(x["route_share_done"]) == pytest.approx([0.0, 0.25, 0.5, 0.75])
    # load at T+1d: X, 4 (finishes T+2d) and 5; at T+3d: X, 5, 6 (order 4 finished before)
    assert x.loc[1, "active_orders"] == 3 and x.loc[2, "active_orders"] == 3
    # family history at T+1d: orders 2 and 3 (6 and 8 days); at T+3d also order 4 (5 days)
    assert (x.loc[1, "fam_recent_n"], x.loc[1, "fam_recent_lt"]) == (2, pytest.approx(7.0))
    assert (x.loc[2, "fam_recent_n"], x.loc[2, "fam_recent_lt"]) == (3, pytest.approx(19 / 3))
    before = x.loc[[0, 1], FEATURES].copy()

    # orders finishing after the boundary T+1d (X itself, order 4, new ones) change nothing of its features
    # (order 9, open but created 200 days before: abandoned, outside the active load)
    later = [_order(7, T - 2 * D, T + 30 * D), _order(8, T + 1.2 * D, T + 2 * D), _order(9, T - 200 * D, None)]
    _constructed_case(x_finish=T + 9 * D, order4_finish=T + 20 * D, later_orders=later)
    after = _boundaries_of_x()
    # order 7 is open at T+1d (created before it): it is load known then, so it is the one allowed change
    expected = before.copy()
    expected.loc[1, "active_orders"] += 1
    expected.loc[0, "active_orders"] += 1
    pd.testing.assert_frame_equal(after.loc[[0, 1], FEATURES], expected, check_dtype=False)
    assert after.loc[1, "remaining_days"] == pytest.approx(8.0)


@pytest.mark.django_db
def test_open_order_state_at_as_of():
    from orders.selectors import active_orders_at

    _constructed_case()
    as_of = T + 3 * D
    frame = eta_open_features(as_of=as_of)
    # open at as_of: created by then and not finished by then, whatever happened after (X finishes at T+5d,
    # order 6 at T+4d); order 4 finished at T+2d
    assert list(frame["order_id"]) == [5, 1, 6]
    assert set(frame["order_id"]) == {r["order_id"] for r in active_orders_at(as_of=as_of)}
    assert frame["finished_at"].isna().all()  # no hindsight: the later finish is not a feature
    x = frame.set_index("order_id").loc[1]
    # X: phases 10 and 20 ended by as_of (20 exactly at it), phase 30 started at as_of
    assert (x["done_phases"], x["last_phase_id"], x["elapsed_days"]) == (2, 20, pytest.approx(3.0))
    assert x["route_share_done"] == pytest.approx(0.5)
    ManufacturingOrder.objects.bulk_create([_order(9, T - 200 * D, None)])  # open, idle for 203 days: stalled
    clear_caches()  # rows added without an ingestion (which would bump the data version of the cached states)
    frame = eta_open_features(as_of=as_of, ids=[5])
    row = frame.iloc[0]
    # order 5: one phase ended (10) before as_of, one in progress; created T-1d
    assert (row["done_phases"], row["last_phase_id"], row["elapsed_days"]) == (1, 10, pytest.approx(4.0))
    assert row["active_orders"] == 3  # X, 5 and 6 (order 4 finished at T+2d)
    assert (row["fam_recent_n"], row["fam_recent_lt"]) == (3, pytest.approx(19 / 3))  # orders 2, 3 and 4
    assert eta_open_features(as_of=as_of, ids=[4]).empty  # finished by as_of: no ETA
    assert list(eta_open_features(as_of=T - 0.5 * D, ids=[1, 4, 5])["order_id"]) == [4, 5]  # X not created yet
    # stalled: no ETA; asked for, it comes flagged with its idle time
    assert 9 not in set(eta_open_features(as_of=as_of)["order_id"])
    stalled = eta_open_features(as_of=as_of, ids=[9, 5], with_stalled=True).set_index("order_id")
    assert list(stalled["stalled"]) == [1, 0]
    assert stalled.loc[9, "idle_days"] == pytest.approx(203.0)
    # lead time and risk are predicted for every order open at as_of, stalled ones included
    assert sorted(order_features(which="open", as_of=as_of)["order_id"]) == [1, 5, 6, 9]


@pytest.mark.django_db
def test_a_stalled_order_gets_a_stalled_answer_not_an_eta(api_client):
    _constructed_case(later_orders=[_order(9, T - 200 * D, None)])
    as_of = data_as_of()  # the latest timestamp of the data: X's finish at T+5d
    assert as_of == T + 5 * D
    response = api_client.post("/api/ml/predict/eta", {"order_id": 9}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["order_id"], body["status"], body["remaining_days"]) == (9, "stalled", None)
    assert body["idle_days"] == pytest.approx(205.0) and body["idle_days"] > body["stall_threshold_days"] >= 7
    assert "predicted_finish" not in body and "stalled" in body["reason"]
    explained = api_client.get("/api/ml/explain/eta", {"of_id": 9}).json()
    assert explained["status"] == "stalled" and "contributions" not in explained
    # an active order still gets its remaining time; a finished one is not found
    active = api_client.post("/api/ml/predict/eta", {"order_id": 5}, format="json").json()
    assert active["remaining_days"] >= 0 and "status" not in active
    assert api_client.post("/api/ml/predict/eta", {"order_id": 1}, format="json").status_code == 404


@pytest.mark.django_db
def test_baseline_is_family_phase_median_then_family_then_global(factory):
    ds = eta_dataset()
    fitted = services.fit_and_evaluate(name="eta", algorithm=Algorithm.BASELINE, dataset=ds)
    train = ds.splits["train"]
    for (family, phase), rows in train.groupby(["family", "last_phase_id"]):
        key = f"{family}|{int(phase)}"
        assert fitted.model.params["family_phase"][key] == pytest.approx(float(np.median(rows["remaining_days"])))
    test = ds.splits["test"].head(1).copy()
    test["last_phase_id"] = 987654.0  # unseen phase: the family's median
    family = test["family"].iloc[0]
    assert fitted.model.predict(test)[0] == pytest.approx(float(train.loc[train["family"] == family,
                                                                          "remaining_days"].median()))
    test["family"] = "NOPE"
    assert fitted.model.predict(test)[0] == pytest.approx(float(train["remaining_days"].median()))
    # whole orders per split: no order has boundaries in two splits
    owners = pd.concat([s[["order_id"]].assign(split=k) for k, s in ds.splits.items()])
    assert owners.groupby("order_id")["split"].nunique().max() == 1


@pytest.mark.django_db
def test_hgb_training_is_reproducible_with_the_same_seed(factory):
    ds = eta_dataset()
    runs = [services.fit_and_evaluate(name="eta", algorithm=Algorithm.HGB, dataset=ds, seed=7, params=FAST["hgb"])
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].model.predict(ds.splits["test"]), runs[1].model.predict(ds.splits["test"]))
    assert runs[0].metrics == runs[1].metrics and runs[0].importance == runs[1].importance
    assert {"mae", "mape", "p90_abs_error"} <= set(runs[0].metrics["test"])


@pytest.mark.django_db
def test_train_promote_predict_store_and_fall_back(factory, keyed_client, api_client, settings, monkeypatch,
                                                   django_assert_max_num_queries):
    monkeypatch.setattr(services, "DEFAULT_HGB_PARAMS", {**services.DEFAULT_HGB_PARAMS, **FAST["hgb"]})
    assert api_client.post("/api/ml/train/eta", {}, format="json").status_code in (401, 403)
    body = keyed_client.post("/api/ml/train/eta", {"seed": 1}, format="json").json()
    run = body["result"]
    assert run["status"] == "trained" and len(run["versions"]) == 1  # boosting only (no MLP) for ETA
    hgb = ModelVersion.objects.get(pk=run["versions"][0])
    baseline = ModelVersion.objects.get(pk=run["baseline"])
    beats = hgb.metrics["validation"]["mae"] < hgb.metrics["baseline_validation"]["mae"]
    assert hgb.active == beats and run["promoted"] == (hgb.pk if beats else None)
    # remaining time grows with the factory load in the synthetic factory: boosting beats the median
    assert beats and hgb.promotion_reason.startswith("promoted: validation MAE")
    assert {"q10", "q90"} <= set(hgb.residual_quantiles) and hgb.algorithm == Algorithm.HGB

    as_of = data_as_of()
    open_ids = eta_open_features(as_of=as_of)["order_id"].tolist()
    assert open_ids
    order_id = int(open_ids[0])
    with django_assert_max_num_queries(8):  # as-of, one feature query (+ its transaction settings), registry
        response = api_client.post("/api/ml/predict/eta", {"order_id": order_id}, format="json")
    assert response.status_code == 200
    answer = response.json()
    assert answer["model"]["label"] == hgb.label and answer["remaining_days"] >= 0
    finish = pd.Timestamp(as_of) + pd.Timedelta(days=answer["remaining_days"])
    assert abs(pd.Timestamp(answer["predicted_finish"]) - finish) < pd.Timedelta(seconds=10)  # days rounded to 1e-4
    q = hgb.residual_quantiles
    assert answer["interval_80"]["upper"] == pytest.approx(answer["remaining_days"] + q["q90"], abs=1e-3)
    finished_id = int(eta_features()["order_id"].iloc[0])
    assert api_client.post("/api/ml/predict/eta", {"order_id": finished_id}, format="json").status_code == 404

    glob = api_client.get("/api/ml/explain/eta").json()
    assert glob["global_importance"] == hgb.importance and glob["model"]["label"] == hgb.label
    local = api_client.get("/api/ml/explain/eta", {"of_id": order_id}).json()
    assert local["prediction"] == pytest.approx(answer["remaining_days"], abs=1e-3)
    total = sum(c["contribution"] for c in local["contributions"])
    assert total == pytest.approx(local["prediction"] - local["reference_prediction"], abs=1e-3)
    assert {c["feature"] for c in local["contributions"]} == set(hgb.features) and local["as_of"] == answer["as_of"]
    missing = api_client.get("/api/ml/explain/eta", {"of_id": finished_id})
    assert missing.status_code == 404 and "open order" in missing.json()["detail"]

    stored = services.predictions_store_open_orders(as_of=as_of)
    assert stored["stored"]["eta"] == len(open_ids)
    row = Prediction.objects.get(name="eta", order_id=order_id)
    assert row.value == pytest.approx(answer["remaining_days"], abs=1e-3) and row.model_label == hgb.label

    # artifact missing: the registered baseline answers, (family, phase just finished) median
    (Path(settings.MODEL_ARTIFACT_DIR) / hgb.artifact_path).unlink()
    fallback = predict(name="eta", order_id=order_id)
    assert fallback["model"]["label"] == "baseline" and "missing" in fallback["model"]["fallback_reason"]
    f = fallback["features"]
    key = f"{f['family']}|{int(f['last_phase_id'])}"
    expected = baseline.params["family_phase"].get(key, baseline.params["family"].get(f["family"],
                                                                                      baseline.params["global"]))
    assert fallback["remaining_days"] == pytest.approx(expected, abs=1e-4)
    explained = explain(name="eta", order_id=order_id)
    assert explained["prediction"] == pytest.approx(expected, abs=1e-4) and "finished last" in explained["method"]
