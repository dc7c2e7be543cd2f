"""Datasets: no feature uses information after the order's creation; bulk and point SQL agree; temporal split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.datasets import lead_time_dataset, order_features, order_features_point, risk_dataset
from orders.models import ManufacturingOrder, OrderPhase, Phase, Product, RouteStep
from quality.models import QualityError
from tests.mlops.builders import build_factory, empty_domain_tables

T = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
NUMERIC_COLUMNS = ["open_orders", "route_wip", "fam_recent_lt", "fam_recent_n", "prod_hist_lt", "prod_hist_n",
                   "prod_hist_orders", "prod_hist_bad_rate", "fam_hist_orders", "fam_hist_bad_rate", "route_steps",
                   "route_labour", "product_known", "bad", "lead_time_days"]


def _order(oid, created, finished, product=1):
    return ManufacturingOrder(id=oid, created_at=created, finished_at=finished, product_id=product,
                              is_open=finished is None,
                              lead_time_days=(finished - created).total_seconds() / 86400 if finished else None)


def _phase(pid, oid, phase_id, started, ended):
    return OrderPhase(id=pid, order_id=oid, phase_id=phase_id, sequence=1, started_at=started, ended_at=ended,
                      event_time=ended or started, is_open=ended is None, is_done=ended is not None)


def _constructed_case():
    """Order X (id 1) created at T; around it, orders and phases before and after T."""
    empty_domain_tables()
    Phase.objects.bulk_create([Phase(id=10, name="Moldagem", sequence=1), Phase(id=20, name="Acabamento", sequence=2)])
    Product.objects.bulk_create([Product(id=1, name="K1 A", family="K1"), Product(id=2, name="K1 B", family="K1")])
    RouteStep.objects.bulk_create([RouteStep(product_id=1, phase_id=10, sequence=1),
                                   RouteStep(product_id=1, phase_id=20, sequence=2)])
    d = timedelta(days=1)
    ManufacturingOrder.objects.bulk_create([
        _order(1, T, T + 5 * d),                      # X
        _order(2, T - 10 * d, T - 4 * d),             # finished before T: history, not load
        _order(3, T - 20 * d, T - 12 * d, product=2),  # same family, finished before T
        _order(4, T - 3 * d, T + 2 * d),              # open at T, finishes after T: load only
        _order(5, T - 1 * d, None),                   # still open: load
        _order(6, T + 1 * d, T + 3 * d),              # created after T: nothing
    ])
    OrderPhase.objects.bulk_create([
        _phase(100, 4, 10, T - 2 * d, T + 1 * d),     # in progress at T in X's route
        _phase(101, 5, 20, T - 1 * d, None),          # in progress at T
        _phase(102, 2, 10, T - 9 * d, T - 5 * d),     # ended before T
        _phase(103, 6, 10, T + 1 * d, T + 2 * d),     # starts after T
    ])
    QualityError.objects.bulk_create([
        QualityError(order_id=2, severity=2, content_hash="a", occurrence=1, event_time=T - 5 * d),
        QualityError(order_id=3, severity=1, content_hash="b", occurrence=1, event_time=T - 13 * d),
    ])


def _x_features(frame):
    return frame.set_index("order_id").loc[1]


@pytest.mark.django_db
def test_constructed_case_features_known_at_creation():
    _constructed_case()
    x = _x_features(order_features(which="ids", ids=[1]))
    assert x["open_orders"] == 2  # orders 4 and 5; 2 and 3 finished before T, 6 created after
    assert x["route_wip"] == 2  # phases 100 and 101
    assert x["fam_recent_n"] == 2 and x["fam_recent_lt"] == pytest.approx((6 + 8) / 2)
    assert x["prod_hist_n"] == 1 and x["prod_hist_lt"] == pytest.approx(6)
    assert x["prod_hist_orders"] == 1 and x["prod_hist_bad_rate"] == 1.0
    assert x["fam_hist_orders"] == 2 and x["fam_hist_bad_rate"] == 0.5
    assert x["bad"] == 0 and x["lead_time_days"] == pytest.approx(5)


@pytest.mark.django_db
def test_route_wip_reads_times_not_the_snapshot_open_flag():
    """route_wip at X's creation T counts its route's phases started before T and not ended before T, from the
    phase times; the is_open flag (a snapshot-time fact) is not read, so a wrong or later flag changes nothing."""
    _constructed_case()
    OrderPhase.objects.filter(id=101).update(is_open=False)  # open at T (no end): the flag says otherwise
    OrderPhase.objects.filter(id=102).update(is_open=True)  # ended before T
    for frame in (order_features(which="ids", ids=[1]), order_features_point(ids=[1])):
        assert _x_features(frame)["route_wip"] == 2  # phases 100 (ends after T) and 101 (no end)


@pytest.mark.django_db
def test_orders_finished_after_creation_do_not_change_features():
    """An order finished after X's creation must not enter X's recent lead times, history or load."""
    _constructed_case()
    before_bulk = _x_features(order_features(which="ids", ids=[1]))[NUMERIC_COLUMNS[:-2]]
    before_point = _x_features(order_features_point(ids=[1]))[NUMERIC_COLUMNS[:-2]]
    d = timedelta(days=1)
    # order 4 (open at T) now finishes much later with a huge lead time and a critical error;
    # a new order of the same product, created before T, finishes after T (open at T either way)
    ManufacturingOrder.objects.filter(id=4).update(finished_at=T + 60 * d, lead_time_days=63)
    ManufacturingOrder.objects.bulk_create([_order(7, T - 1 * d, T + 40 * d)])
    QualityError.objects.bulk_create([QualityError(order_id=4, severity=3, content_hash="c", occurrence=1,
                                                   event_time=T + 59 * d)])
    # and an error found after T on an order that finished before T (outcome known only later)
    QualityError.objects.bulk_create([QualityError(order_id=3, severity=3, content_hash="d", occurrence=1,
                                                   event_time=T + 1 * d)])
    after_bulk = _x_features(order_features(which="ids", ids=[1]))[NUMERIC_COLUMNS[:-2]]
    after_point = _x_features(order_features_point(ids=[1]))[NUMERIC_COLUMNS[:-2]]
    expected = before_bulk.copy()
    expected["open_orders"] += 1  # order 7 was open at T: known at T
    expected["fam_hist_orders"] -= 1  # order 3's outcome is now only known after T
    expected["fam_hist_bad_rate"] = 1.0
    pd.testing.assert_series_equal(after_bulk, expected, check_names=False)
    pd.testing.assert_series_equal(after_point, expected, check_names=False)
    pd.testing.assert_series_equal(before_point, before_bulk, check_names=False)


@pytest.mark.django_db
def test_bulk_and_point_queries_agree_and_match_python():
    truth = build_factory(n_orders=200, days=300)
    bulk = order_features(which="finished").set_index("order_id")
    point = order_features_point(ids=bulk.index.tolist()).set_index("order_id")
    pd.testing.assert_frame_equal(bulk[NUMERIC_COLUMNS], point[NUMERIC_COLUMNS], check_exact=False, rtol=1e-9)
    # independent recomputation in plain Python of the load and family-history features
    products = dict(Product.objects.values_list("id", "family"))
    orders = list(ManufacturingOrder.objects.values("id", "created_at", "finished_at", "product_id"))
    for oid in bulk.index[::7]:
        t = truth[oid][0]
        open_orders = sum(1 for o in orders if o["created_at"] < t and (o["finished_at"] is None or o["finished_at"] >= t))
        family = products.get(truth[oid][2], "UNKNOWN")
        recent = [(o["finished_at"] - o["created_at"]).total_seconds() / 86400 for o in orders
                  if o["finished_at"] is not None and t - timedelta(days=90) <= o["finished_at"] < t
                  and products.get(o["product_id"], "UNKNOWN") == family]
        assert bulk.loc[oid, "open_orders"] == open_orders
        assert bulk.loc[oid, "fam_recent_n"] == len(recent)
        if recent:
            assert bulk.loc[oid, "fam_recent_lt"] == pytest.approx(np.mean(recent))
    assert (bulk.loc[bulk["product_id"] == 999, "product_known"] == 0).all()
    assert (bulk.loc[bulk["product_id"] == 999, "family"] == "UNKNOWN").all()


@pytest.mark.django_db
def test_temporal_split_and_provenance():
    build_factory(n_orders=200, days=300)
    from prodplan.cache import data_version

    for ds in (lead_time_dataset(), risk_dataset()):
        rows = ds.rows()
        total = sum(rows.values())
        assert total == len(ds.frame) and rows["train"] == pytest.approx(0.70 * total, abs=2)
        assert rows["validation"] == pytest.approx(0.15 * total, abs=2)
        assert ds.splits["train"]["created_at"].max() < ds.validation_start <= ds.splits["validation"]["created_at"].min()
        assert ds.splits["validation"]["created_at"].max() < ds.test_start <= ds.splits["test"]["created_at"].min()
        assert ds.data_version == data_version()
        # right-censoring: nothing created after the cutoff, which lies before the as-of date
        assert ds.censor_cutoff < ds.as_of and ds.frame["created_at"].max() <= ds.censor_cutoff
    assert set(risk_dataset().frame["bad"].unique()) == {0.0, 1.0}


@pytest.mark.django_db
def test_dataset_on_the_ingested_demo_workbook(ingested):
    """On the generated workbook: targets and load features recomputed in plain Python from the stored orders."""
    from quality.models import QualityError as Error

    frame = order_features(which="finished").set_index("order_id")
    orders = list(ManufacturingOrder.objects.values("id", "created_at", "finished_at", "product_id"))
    finished = {o["id"]: o for o in orders if o["created_at"] and o["finished_at"] and o["finished_at"] >= o["created_at"]}
    assert set(frame.index) == set(finished)
    severe = set(Error.objects.filter(severity__gte=2).values_list("order_id", flat=True))
    known = set(Product.objects.values_list("id", flat=True))
    for oid in list(frame.index)[::5]:
        o = finished[oid]
        t = o["created_at"]
        assert frame.loc[oid, "lead_time_days"] == pytest.approx((o["finished_at"] - t).total_seconds() / 86400)
        assert frame.loc[oid, "bad"] == (1.0 if oid in severe else 0.0)
        assert frame.loc[oid, "product_known"] == (1.0 if o["product_id"] in known else 0.0)
        assert frame.loc[oid, "open_orders"] == sum(
            1 for m in orders if m["created_at"] and m["created_at"] < t
            and (m["finished_at"] is None or m["finished_at"] >= t)
            and (m["finished_at"] is None or m["finished_at"] >= m["created_at"]))
    # unknown products are kept (orphans), under the UNKNOWN family
    assert (frame["product_known"] == 0).any() and (frame.loc[frame["product_known"] == 0, "family"] == "UNKNOWN").all()
    ds = lead_time_dataset()
    assert ds.as_of == ingested["as_of"] and len(ds.frame) <= len(frame)
