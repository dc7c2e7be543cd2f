"""Remaining time (ETA) at any as_of: no hindsight, the calibrated 80% interval, the backtest and what shows it."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from mlops import intervals, services
from mlops.datasets import ETA_NUMERIC, data_as_of, eta_features, eta_open_features
from mlops.models import EtaBacktest, ModelVersion
from orders.models import ManufacturingOrder
from tests.conftest import clear_caches
from tests.mlops.conftest import FAST
from tests.orders.cut_workbook import write_cut_workbook
from tests.orders.test_no_hindsight import _ingest, demo_workbook_started_rows_only  # noqa: F401 (a fixture)

LISBON = ZoneInfo("Europe/Lisbon")
FEATURES = ["order_id", "family", "product_id", *ETA_NUMERIC]
BAD_AS_OF = ["2025-02-30", "9999-12-31", "amanhã"]


def _fast(monkeypatch):
    monkeypatch.setattr(services, "DEFAULT_HGB_PARAMS", {**services.DEFAULT_HGB_PARAMS, **FAST["hgb"]})


# --- the interval (pure computation) ---------------------------------------------------------------------------


def _synthetic(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Moments whose spread depends on progress and state (wide early, narrow late, wider when not started), with a
    right-skewed error, and a model that is biased (it predicts 85% of the median): conformal must fix both."""
    share = rng.uniform(0, 1, n)
    state = rng.choice([0, 1, 2], size=n, p=[0.1, 0.6, 0.3])
    unknown_route = rng.random(n) < 0.15
    median = 0.5 + 10 * (1 - share)
    spread = (0.15 + 0.5 * (1 - share)) * np.where(state == 0, 1.6, 1.0)
    actual = median * np.exp(spread * rng.standard_normal(n))
    frame = pd.DataFrame({
        "route_share_done": np.where(unknown_route, np.nan, share), "done_phases": np.round(share * 16),
        "route_steps": np.where(unknown_route, 0, 16), "state_code": state,
    })
    return frame, 0.85 * median, actual


def test_the_interval_covers_80_percent_of_held_out_moments_in_every_bucket():
    rng = np.random.default_rng(7)
    calibration = intervals.calibrate(*_synthetic(rng, 20_000))
    assert calibration["method"] == intervals.METHOD and calibration["typical_steps"] == 16
    frame, pred, actual = _synthetic(rng, 40_000)  # held out: never seen by the calibration
    held_out = intervals.coverage(calibration, frame, pred, actual)
    assert held_out["coverage"] == pytest.approx(0.80, abs=0.015)
    for bucket in intervals.BUCKETS:
        assert held_out["by_bucket"][bucket]["coverage"] == pytest.approx(0.80, abs=0.025), bucket
    # conditional on state too (the groups), where one fixed band would not be
    b = intervals.bounds(calibration, frame, pred)
    inside = (b["lower"] <= actual) & (actual <= b["upper"])
    for code in (0, 1, 2):
        assert inside[frame["state_code"].to_numpy() == code].mean() == pytest.approx(0.80, abs=0.03), code
    one_band = {"q10": calibration["q10"], "q90": calibration["q90"], "n": calibration["n"]}
    old = intervals.bounds(one_band, frame, pred)
    old_inside = (old["lower"] <= actual) & (actual <= old["upper"])
    late = intervals.buckets(frame) == "late"
    assert old_inside[late].mean() > 0.95  # the old single band: far too wide near the end of the route
    # the median correction removes the model's bias
    assert abs(np.median(b["point"] - actual)) < 0.25 < abs(np.median(pred - actual))


def _grouped(rng: np.random.Generator, n: int, *, scales=(0.8, 0.3, 0.08), orders: int | None = None,
             start=None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Moments in three progress thirds whose errors have very different scales (log-normal around the prediction,
    sigma 0.8 in the first third, 0.3 in the middle, 0.08 in the last by default), all waiting; `orders` distinct
    orders (default: one per moment); hourly moments from `start` when given."""
    bucket = rng.integers(0, 3, n)
    share = (bucket + rng.uniform(0.05, 0.95, n)) / 3
    pred = 1.0 + 9.0 * (1 - share)
    actual = pred * np.exp(np.array(scales)[bucket] * rng.standard_normal(n))
    frame = pd.DataFrame({"route_share_done": share, "done_phases": np.round(share * 16), "route_steps": 16,
                          "state_code": 1, "order_id": rng.integers(0, orders or n, n) if orders else np.arange(n)})
    if start is not None:
        frame["moment_at"] = start + pd.to_timedelta(np.arange(n), unit="h")
    return frame, pred, actual


def _inside(calibration, frame, pred, actual) -> np.ndarray:
    b = intervals.bounds(calibration, frame, pred)
    return (b["lower"] <= actual) & (actual <= b["upper"])


def test_group_conditional_calibration_covers_every_progress_third_where_a_pooled_band_does_not():
    rng = np.random.default_rng(11)
    calibration = intervals.calibrate(*_grouped(rng, 6_000))
    frame, pred, actual = _grouped(rng, 60_000)  # held out
    bucket = intervals.buckets(frame)
    inside = _inside(calibration, frame, pred, actual)
    pooled = _inside(intervals.pooled(calibration), frame, pred, actual)
    for b in intervals.BUCKETS:
        assert inside[bucket == b].mean() == pytest.approx(0.80, abs=0.02), b
    assert pooled.mean() == pytest.approx(0.80, abs=0.03)  # the pooled band holds on average only:
    assert pooled[bucket == "early"].mean() < 0.65  # too narrow where the errors are wide
    assert pooled[bucket == "late"].mean() > 0.97  # too wide where they are narrow
    assert {g for g in intervals.bounds(calibration, frame, pred)["group"]} == {f"{b}|waiting" for b in intervals.BUCKETS}


def test_the_conformal_quantile_is_the_finite_sample_rank_and_holds_at_small_n():
    for n in (9, 10, 19, 40, 101):
        scores = np.random.default_rng(n).permutation(np.arange(1.0, n + 1))
        rank = math.ceil((n + 1) * 0.9)
        expected = math.inf if rank > n else float(rank)  # the rank-th smallest of 1..n
        assert intervals.conformal_quantile(scores, 0.9) == expected, n
    lo, hi = intervals.conformal_ends(np.arange(1.0, 41))
    assert (lo, hi) == (4.0, 37.0)  # floor(41 * 0.1) = 4th and ceil(41 * 0.9) = 37th smallest
    # exchangeable draws: a group of just 40 residuals covers a new one at least 80% of the time (on average over
    # calibration sets), and not much more (the finite-sample rank, not a conservative padding)
    rng = np.random.default_rng(5)
    hits = []
    for _ in range(4_000):
        r = rng.standard_exponential(41) - 1.0  # skewed, like remaining time
        lo, hi = intervals.conformal_ends(r[:40])
        hits.append(lo <= r[40] <= hi)
    assert 0.80 <= np.mean(hits) <= 0.86
    # weights: a row of weight 0 counts for nothing; halving old rows moves the quantile towards the recent ones
    r = np.concatenate([np.full(50, 10.0), np.arange(1.0, 51)])
    w = np.concatenate([np.zeros(50), np.ones(50)])
    assert intervals.conformal_quantile(r, 0.9, w) == intervals.conformal_quantile(np.arange(1.0, 51), 0.9)


def test_a_group_with_too_few_orders_uses_its_third_then_the_pooled_band():
    rng = np.random.default_rng(3)
    frame, pred, actual = _grouped(rng, 3_000)
    # 60 moments of the middle third in progress, but from only 5 orders: under MIN_GROUP_ORDERS
    few = frame[intervals.buckets(frame) == "middle"].head(60).index
    frame.loc[few, "state_code"] = 2
    frame.loc[few, "order_id"] = 100_000 + np.arange(60) % 5
    # the last third: 25 moments in all (under MIN_GROUP_ROWS): the pooled band answers it
    late = np.flatnonzero(intervals.buckets(frame) == "late")[25:]
    frame, pred, actual = frame.drop(index=late).reset_index(drop=True), np.delete(pred, late), np.delete(actual, late)
    calibration = intervals.calibrate(frame, pred, actual)
    group = calibration["groups"]["middle|in_progress"]
    assert group["n"] == 60 and group["orders"] == 5
    assert calibration["buckets"]["late"]["n"] == 25 < intervals.MIN_GROUP_ROWS
    ask = pd.DataFrame({"route_share_done": [0.5, 0.5, 0.9, 0.1], "done_phases": [8, 8, 14, 2], "route_steps": 16,
                        "state_code": [2, 1, 1, 1]})
    assert intervals.bounds(calibration, ask, np.full(4, 4.0))["group"] == [
        "middle", "middle|waiting", "overall", "early|waiting"]
    check = intervals.shift_check(calibration, ask, np.full(4, 4.0))
    assert check["middle"]["groups_used"]["middle"]["rows"] == 1 and check["late"]["groups_used"] == {
        "overall": {"rows": 1, "calibration_n": calibration["overall"]["n"],
                    "calibration_orders": calibration["overall"]["orders"]}}


def test_recent_calibration_moments_weigh_more_under_drift():
    """The errors narrowed 240 days ago (before: sigma 0.6, since: 0.2): the recency weights give the recent
    behaviour, an unweighted band the average of both."""
    rng = np.random.default_rng(8)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    old = _grouped(rng, 8_760, scales=(0.6, 0.6, 0.6), start=start)  # one year, hourly
    new = _grouped(rng, 5_760, scales=(0.2, 0.2, 0.2), start=start + pd.Timedelta(days=365))  # 240 days
    frame = pd.concat([old[0], new[0]], ignore_index=True)
    calibration = intervals.calibrate(frame, np.concatenate([old[1], new[1]]), np.concatenate([old[2], new[2]]))
    held_out = _grouped(rng, 30_000, scales=(0.2, 0.2, 0.2))
    weighted = _inside(calibration, *held_out).mean()
    unweighted = _inside(intervals.calibrate(frame.drop(columns="moment_at"), np.concatenate([old[1], new[1]]),
                                             np.concatenate([old[2], new[2]])), *held_out).mean()
    assert unweighted > 0.93  # far too wide for today's errors
    assert weighted < unweighted - 0.05 and weighted >= 0.80
    assert calibration["overall"]["n_effective"] < calibration["overall"]["n"]


def test_the_coverage_interval_is_the_exact_binomial_one():
    assert intervals.coverage_interval(0, 0) is None
    lo, hi = intervals.coverage_interval(14, 21)
    assert lo < 14 / 21 < hi and hi - lo > 0.4  # 21 orders tell little: one order is 4.8 points
    assert intervals.coverage_interval(21, 21)[1] == 1.0 and intervals.coverage_interval(0, 21)[0] == 0.0
    lo_big, hi_big = intervals.coverage_interval(1400, 2100)
    assert lo < lo_big < hi_big < hi


def test_a_finish_is_never_before_as_of_and_old_rows_still_read():
    frame = pd.DataFrame({"route_share_done": [0.9, 0.1], "done_phases": [14, 2], "route_steps": [16, 16],
                          "state_code": [1, 2]})
    entry = {"n": 500, "lo": -3.0, "hi": 1.0, "median": -0.2}
    calibration = {"method": intervals.METHOD, "overall": entry, "buckets": {}, "groups": {}, "typical_steps": 16}
    b = intervals.bounds(calibration, frame, np.array([0.5, 9.0]))
    assert b["lower"][0] == 0.0 and b["clipped"][0]  # 0.5 - 3 * sqrt(1) < 0: clipped at as_of
    assert not b["clipped"][1] and b["lower"][1] == pytest.approx(9.0 - 3.0 * 3.0)
    assert (b["lower"] <= b["point"]).all() and (b["point"] <= b["upper"]).all() and (b["lower"] >= 0).all()
    # a registry row of the old shape: one additive band, no correction
    old = intervals.bounds({"q10": -2.0, "q90": 3.0, "n": 40}, frame, np.array([1.0, 4.0]))
    assert list(old["lower"]) == [0.0, 2.0] and list(old["upper"]) == [4.0, 7.0] and list(old["point"]) == [1.0, 4.0]
    assert list(old["clipped"]) == [True, False] and intervals.basis({"q10": -2.0, "q90": 3.0})


# --- serving at any as_of --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_past_as_of_predicts_the_orders_open_then_that_finished_later(factory, keyed_client,
                                                                        monkeypatch):
    _fast(monkeypatch)
    assert keyed_client.post("/api/ml/train/eta", {"seed": 1}, format="json").status_code == 202
    last = data_as_of()
    past = last - timedelta(days=40)
    frame = eta_open_features(as_of=past)
    finished_later = ManufacturingOrder.objects.filter(id__in=frame["order_id"].tolist(), finished_at__gt=past,
                                                       finished_at__lte=last).values_list("id", flat=True)
    assert finished_later, "the factory has orders open 40 days before its as-of that finished since"
    order_id = int(finished_later[0])
    # at the data's as-of it is finished: no remaining time; at the past as_of it was open: an answer from then
    assert keyed_client.post("/api/ml/predict/eta", {"order_id": order_id}, format="json").status_code == 404
    response = keyed_client.post("/api/ml/predict/eta", {"order_id": order_id, "as_of": past.isoformat()},
                               format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["as_of"] == past.isoformat() and body["remaining_days"] >= 0
    assert pd.Timestamp(body["predicted_finish"]) >= pd.Timestamp(past)
    assert pd.Timestamp(body["finish_interval_80"]["earliest"]) >= pd.Timestamp(past)
    assert body["features"]["elapsed_days"] == pytest.approx(
        float(frame.set_index("order_id").loc[order_id, "elapsed_days"]), abs=1e-6)
    # the model was trained with data after that as_of, and the answer says so
    assert any("after as_of" in note for note in body["notes"])
    explained = keyed_client.get("/api/ml/explain/eta", {"of_id": order_id, "as_of": past.isoformat()})
    assert explained.status_code == 200 and explained.json()["as_of"] == past.isoformat()
    # every answer at every open order: a finish never before as_of, the interval around the point
    stored = services.predictions_store_open_orders(as_of=past)
    assert stored["stored"]["eta"] == len(frame)
    from mlops.models import Prediction

    for row in Prediction.objects.filter(name="eta"):
        assert row.predicted_finish >= past and 0 <= row.lower <= row.value <= row.upper
    # lead time and risk: an order created after as_of is not found then
    newest = ManufacturingOrder.objects.order_by("-created_at").first()
    for name in ("leadtime", "risk"):
        before = keyed_client.post(f"/api/ml/predict/{name}", {"order_id": newest.id,
                                                               "as_of": (newest.created_at - timedelta(days=1)).isoformat()},
                                 format="json")
        assert before.status_code == 404 and "as_of" in before.json()["detail"]


@pytest.mark.django_db
def test_invalid_as_of_on_predict_and_explain_is_a_400_naming_it(keyed_client):
    for name in ("leadtime", "risk", "eta"):
        for raw in BAD_AS_OF:
            response = keyed_client.post(f"/api/ml/predict/{name}", {"order_id": 1, "as_of": raw}, format="json")
            assert response.status_code == 400 and list(response.json()) == ["as_of"], (name, raw, response.content)
            assert "2000-01-01 .. 2100-12-31" in response.json()["as_of"][0]
            explained = keyed_client.get(f"/api/ml/explain/{name}", {"of_id": 1, "as_of": raw})
            assert explained.status_code == 400 and list(explained.json()) == ["as_of"], (name, raw)
        not_text = keyed_client.post(f"/api/ml/predict/{name}", {"order_id": 1, "as_of": ["2025-01-01"]}, format="json")
        assert not_text.status_code == 400 and list(not_text.json()) == ["as_of"]


# --- no hindsight: the features at D equal those of the workbook cut at D -----------------------------------------


def _features_at(as_of: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    served = eta_open_features(as_of=as_of, with_stalled=True).sort_values("order_id").reset_index(drop=True)
    moments = eta_features().sort_values(["order_id", "moment_at"]).reset_index(drop=True)
    return served, moments


@pytest.mark.django_db
@pytest.mark.parametrize("shape", ["all_rows", "started_rows_only"])
def test_eta_features_at_d_equal_those_of_the_workbook_cut_at_d(request, tmp_path, shape):
    workbook = request.getfixturevalue("demo_workbook" if shape == "all_rows" else "demo_workbook_started_rows_only")
    run = _ingest(workbook["path"])
    day = run.as_of.astimezone(LISBON).date() - timedelta(days=40)
    at = datetime.combine(day, time(12, 0), tzinfo=LISBON)
    served_full, moments_full = _features_at(at)
    assert len(served_full) and served_full["stalled"].eq(0).any()
    finished_later = ManufacturingOrder.objects.filter(id__in=served_full["order_id"].tolist(), finished_at__gt=at)
    assert finished_later.exists()  # open at D, finished after it: what hindsight would leak

    path = tmp_path / "cut.xlsx"
    write_cut_workbook(path, at=at)
    _ingest(path)
    clear_caches()
    served_cut, moments_cut = _features_at(at)
    # serving at D: the same orders, the same state and features
    columns = [*FEATURES, "moment_at", "stalled", "idle_days", "stall_threshold_days"]
    pd.testing.assert_frame_equal(served_cut[columns], served_full[columns], check_dtype=False)
    # training with what was known at D: the moments of the orders finished by D, each with the same features
    known = moments_full[moments_full["finished_at"] <= at].reset_index(drop=True)
    assert len(known) and len(moments_cut) == len(known)
    pd.testing.assert_frame_equal(moments_cut[[*columns[:-3], "remaining_days"]],
                                  known[[*columns[:-3], "remaining_days"]], check_dtype=False)


# --- the backtest: stored, shown with every ETA --------------------------------------------------------------------


@pytest.mark.django_db
def test_eta_backtest_stores_coverage_by_bucket_and_every_eta_shows_it(factory, keyed_client,
                                                                       supervisor_client, monkeypatch):
    _fast(monkeypatch)
    last = data_as_of()
    start = (last - timedelta(days=70)).astimezone(LISBON).date()
    call_command("eta_backtest", start=start.isoformat(), weeks=3)
    row = EtaBacktest.objects.get()
    assert row.weeks == 3 and row.model_source == services.ETA_BACKTEST_RETRAINED and row.data_as_of == last
    assert 0 < row.scored and row.covered <= row.scored and row.coverage == pytest.approx(row.covered / row.scored)
    assert set(row.by_bucket) == set(intervals.BUCKETS)
    assert sum(b["n"] for b in row.by_bucket.values()) == row.scored == sum(w["n"] for w in row.weekly)
    assert row.finished + row.never_finished == row.scored and row.mae_days is not None
    assert [w["date"][:10] for w in row.weekly] == [(start + timedelta(days=7 * k)).isoformat() for k in range(3)]
    # each date's model knew nothing after that date
    for model in row.details["models"]:
        assert datetime.fromisoformat(model["known_until"]) <= datetime.fromisoformat(model["date"])
    for p in row.details["predictions"]:
        assert 0 <= p["lower"] <= p["predicted_days"] <= p["upper"]
        if p["actual_days"] is not None:
            assert p["covered"] == (p["lower"] <= p["actual_days"] <= p["upper"])

    pct = round(100 * row.coverage)
    # the API's answers
    assert keyed_client.post("/api/ml/train/eta", {"seed": 1}, format="json").status_code == 202
    order_id = int(eta_open_features(as_of=last)["order_id"].iloc[0])
    answer = keyed_client.post("/api/ml/predict/eta", {"order_id": order_id}, format="json").json()
    line = answer["interval_backtest"]
    assert (line["coverage"], line["n"], line["start"]) == (row.coverage, row.scored, start.isoformat())
    assert line["text"].startswith(f"80% interval: right {pct}% of the time (backtest, n={row.scored}")
    # the models page and the order page, in Portuguese first
    page = supervisor_client.get("/models/").content.decode()
    assert 'id="eta-backtest"' in page and f"certo em {pct}%" in page and f"n={row.scored}" in page
    # (the factory has no ingestion run: the page is asked at the data's last timestamp)
    widget = supervisor_client.get(f"/orders/{order_id}/", {"widget": "prediction", "as_of": last.isoformat()},
                                   HTTP_HX_REQUEST="true").content.decode()
    assert f"certo em {pct}%" in widget and 'id="eta-finish"' in widget
    english = supervisor_client.get("/models/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"80% interval: right {pct}% of the time" in english


@pytest.mark.django_db
def test_without_a_backtest_every_eta_says_so(factory, keyed_client, supervisor_client):
    order_id = int(eta_open_features(as_of=data_as_of())["order_id"].iloc[0])
    answer = keyed_client.post("/api/ml/predict/eta", {"order_id": order_id}, format="json").json()
    assert answer["interval_backtest"]["coverage"] is None and "no backtest" in answer["interval_backtest"]["text"]
    assert ModelVersion.objects.count() == 0  # the live baseline answered (no interval without a calibration)
    page = supervisor_client.get("/models/").content.decode()
    assert 'id="eta-backtest"' in page and "nenhum teste retrospetivo" in page.lower()

