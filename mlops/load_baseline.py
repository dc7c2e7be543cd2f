"""The load-aware lead-time baseline: Little's law at an order's creation (work in progress over the recent
completion rate, both known then), scaled per product; its features come from one set-based SQL query."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from django.db import connection, transaction

from mlops import training
from mlops.choices import Algorithm

WIP_DAYS = 90  # an order open longer than this leaves the WIP (abandoned orders would pile up otherwise)
RATE_DAYS = 28  # completions per day over the four weeks before the moment
KIND = "load_aware"

# Every figure at t = the order's creation uses only what was known before t (strict inequalities):
# wip = orders created before t, not finished before t and created in the WIP_DAYS before t; completions = orders
# finished in [t - RATE_DAYS, t). little_days = wip / (completions / RATE_DAYS), Little's law W = L / lambda.
# Plan: one pass over the orders as an event stream (enter, leave, finish, probe), sorted once by time; the
# running sums minus the sums of the rows at the same instant give "strictly before t"; no per-order look-ups.
_LOAD_SQL = """
WITH base AS (
    SELECT o.id, o.created_at, o.finished_at,
           (o.finished_at IS NULL OR o.finished_at >= o.created_at) AS consistent
    FROM orders_manufacturingorder o WHERE o.created_at IS NOT NULL
),
stream AS (
    SELECT b.created_at AS t, 1 AS enter, 0 AS leave, 0 AS done, NULL::bigint AS probe FROM base b WHERE b.consistent
    UNION ALL
    SELECT LEAST(b.finished_at, b.created_at + interval '{wip_days} days'), 0, 1, 0, NULL FROM base b WHERE b.consistent
    UNION ALL
    SELECT b.finished_at, 0, 0, 1, NULL FROM base b WHERE b.finished_at >= b.created_at
    UNION ALL
    SELECT b.created_at, 0, 0, 0, b.id FROM base b WHERE b.id = ANY(%(ids)s)
)
SELECT probe AS order_id, (eb - ep) - (lb - lp) AS wip, db - dp AS completions FROM (
    SELECT probe, sum(enter) OVER upto AS eb, sum(enter) OVER peers AS ep, sum(leave) OVER upto AS lb,
           sum(leave) OVER peers AS lp, sum(done) OVER recent AS db, sum(done) OVER peers AS dp
    FROM stream
    WINDOW upto AS (ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
           recent AS (ORDER BY t RANGE BETWEEN '{rate_days} days' PRECEDING AND CURRENT ROW),
           peers AS (PARTITION BY t)
) x WHERE probe IS NOT NULL
"""


def load_features(*, ids) -> pd.DataFrame:
    """wip, completions and little_days at the creation of each order in `ids` (one SQL query)."""
    ids = [int(i) for i in ids]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # the stream's row estimates are far off; JIT would cost seconds
        cursor.execute(_LOAD_SQL.format(wip_days=WIP_DAYS, rate_days=RATE_DAYS), {"ids": ids})
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=["order_id", "wip", "completions"])
    frame = frame.astype({"order_id": "int64", "wip": float, "completions": float})
    rate = frame["completions"] / RATE_DAYS
    frame["little_days"] = (frame["wip"] / rate).where(rate > 0)
    return frame


def with_load_features(frame: pd.DataFrame, load: pd.DataFrame) -> pd.DataFrame:
    """The frame with the load columns of its orders (index kept)."""
    columns = ["wip", "completions", "little_days"]
    return frame.drop(columns=[c for c in columns if c in frame.columns]).join(
        load.set_index("order_id")[columns], on="order_id")


class LoadAwareBaseline:
    """Lead time = Little's-law lead time at creation x the product's median ratio of real to Little's-law lead
    time over the training window (else the family's, else the global ratio). When no order finished in the
    RATE_DAYS before creation, the product median (then family, then global) answers."""

    algorithm = Algorithm.BASELINE

    def __init__(self, params: dict):
        self.params = params

    @classmethod
    def fit(cls, name: str, train: pd.DataFrame, target: str) -> LoadAwareBaseline:
        medians = training.Baseline.fit(name, train, target).params
        known = train[train["little_days"] > 0]
        ratio = known[target].astype(float) / known["little_days"]
        product = ratio.groupby(known["product_id"]).median()
        family = ratio.groupby(known["family"]).median()
        return cls({**medians, "kind": KIND, "wip_days": WIP_DAYS, "rate_days": RATE_DAYS, "ratio": {
            "product": {str(int(k)): float(v) for k, v in product.items()},
            "family": {str(k): float(v) for k, v in family.items()},
            "global": float(ratio.median()) if len(ratio) else None,
        }})

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        ratios = self.params["ratio"]
        product = frame["product_id"].astype("int64").astype(str).map(ratios["product"])
        ratio = product.fillna(frame["family"].astype(str).map(ratios["family"])).fillna(ratios["global"])
        little = frame["little_days"].astype(float) if "little_days" in frame else pd.Series(np.nan, frame.index)
        loaded = (ratio.astype(float) * little).to_numpy(dtype=float)
        medians = frame["product_id"].astype("int64").astype(str).map(self.params["product"])
        medians = medians.fillna(frame["family"].astype(str).map(self.params["family"]))
        fallback = medians.fillna(self.params["global"]).to_numpy(dtype=float)
        return np.where(np.isnan(loaded), fallback, loaded)


def fit_load_aware(*, name: str, dataset):
    """The load-aware baseline fitted on the dataset's training split (its splits must carry the load columns),
    evaluated like every other model."""
    started = time.perf_counter()
    model = LoadAwareBaseline.fit(name, dataset.splits["train"], dataset.target)
    seconds = time.perf_counter() - started
    metrics = {split: training.evaluate(name, model, dataset.splits[split], dataset.target)
               for split in ("validation", "test")}
    validation = dataset.splits["validation"]
    residuals = training.residual_quantiles(validation[dataset.target].to_numpy(), model.predict(validation)) \
        if len(validation) else {}
    return training.Fitted(algorithm=Algorithm.BASELINE, model=model, params={}, metrics=metrics,
                           residuals=residuals, importance=[], seconds=seconds)
