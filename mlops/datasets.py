"""Training datasets built from the database: one SQL query each, only features known when an order is created.

Every feature of an order X is computed "as of X's creation time t" with strict inequalities:
- open_orders: orders created before t and not finished before t
  (created_at < t AND (finished_at IS NULL OR finished_at >= t)); orders whose finish precedes
  their creation are ignored;
- route_wip: order phases of the phases of X's standard route started before t and not ended
  before t;
- family / product history: orders finished strictly before t (lead times), and order outcomes
  (at least one severity >= 2 error) known strictly before t, where an outcome is known at the
  later of the order's finish and its last severe error.
So an order finished after t can never change X's features (tests/mlops/test_datasets.py). No snapshot-time
flag (is_open) is read for a past time: a phase is open at t when started before t and not ended before t.

Which orders are open at a prediction time (what is predicted, and what gets an ETA) is the orders app's
order state (orders.selectors: ORDER_STATE_CALL, open_orders_at); stalled orders get no ETA.

Two implementations compute the same features: `_BULK_SQL` (window functions over event
streams, for whole datasets) and `_POINT_SQL` (correlated index look-ups, for a handful of orders
at prediction time). The test suite checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction

from mlops.choices import ModelName
from orders.choices import OrderState
from orders.selectors import ACTIVE_STATES, OPEN_STATES, ORDER_STATE_CALL, open_orders_at, order_state_params
from prodplan.asof import data_as_of as loaded_as_of
from prodplan.cache import data_version

TRAIN_SHARE = 0.70
VALIDATION_SHARE = 0.15
RECENT_DAYS = 90

CATEGORICAL = ["family", "product_id"]
LEAD_TIME_NUMERIC = [
    "product_known", "demould_weight_kg", "finished_weight_kg", "gelcoat_deck_qty", "gelcoat_hull_qty",
    "route_steps", "route_labour", "route_machine", "created_month", "created_weekday",
    "open_orders", "route_wip", "fam_recent_lt", "fam_recent_n", "prod_hist_lt", "prod_hist_n",
]
RISK_NUMERIC = LEAD_TIME_NUMERIC + ["prod_hist_orders", "prod_hist_bad_rate", "fam_hist_orders", "fam_hist_bad_rate"]

# The rows whose features are wanted ("targets"); chosen from this fixed set, never from user input.
# (which="open" is turned into ids: the orders open at a time are the order state's, order_ids_open_at().)
_TARGET_FILTERS = {
    "finished": "b.lead_time_days IS NOT NULL",
    "ids": "b.id = ANY(%(ids)s)",
}

_BASE_CTE = """
base AS (
    SELECT o.id, o.created_at, o.finished_at, COALESCE(o.product_id, -1) AS product_id,
           (p.id IS NOT NULL)::int AS product_known, COALESCE(p.family, 'UNKNOWN') AS family,
           p.demould_weight_kg, p.finished_weight_kg, p.gelcoat_deck_qty, p.gelcoat_hull_qty,
           CASE WHEN o.finished_at >= o.created_at
                THEN EXTRACT(EPOCH FROM o.finished_at - o.created_at) / 86400.0 END AS lead_time_days,
           (o.finished_at IS NULL OR o.finished_at >= o.created_at) AS consistent
    FROM orders_manufacturingorder o
    LEFT JOIN orders_product p ON p.id = o.product_id
    WHERE o.created_at IS NOT NULL
),
severe AS (
    SELECT e.order_id, count(*) AS n_severe, max(e.event_time) AS last_severe
    FROM quality_qualityerror e WHERE e.severity >= 2 GROUP BY e.order_id
),
outcome AS (
    -- an order's outcome is known once it finished and its last severe error was recorded
    SELECT b.id, b.product_id, b.family, GREATEST(b.finished_at, s.last_severe) AS known_at,
           (s.n_severe IS NOT NULL)::int AS bad
    FROM base b LEFT JOIN severe s ON s.order_id = b.id
    WHERE b.lead_time_days IS NOT NULL
),
route AS (
    SELECT r.product_id, count(*) AS route_steps, COALESCE(sum(r.labour_coefficient), 0) AS route_labour,
           COALESCE(sum(r.machine_coefficient), 0) AS route_machine
    FROM orders_routestep r GROUP BY r.product_id
)"""

_SELECT_COLUMNS = """
    tg.id AS order_id, tg.created_at, tg.finished_at, tg.lead_time_days, tg.product_id, tg.family,
    tg.product_known, tg.demould_weight_kg, tg.finished_weight_kg, tg.gelcoat_deck_qty, tg.gelcoat_hull_qty,
    COALESCE(rt.route_steps, 0) AS route_steps, COALESCE(rt.route_labour, 0) AS route_labour,
    COALESCE(rt.route_machine, 0) AS route_machine,
    EXTRACT(MONTH FROM tg.created_at AT TIME ZONE 'Europe/Lisbon')::int AS created_month,
    EXTRACT(ISODOW FROM tg.created_at AT TIME ZONE 'Europe/Lisbon')::int AS created_weekday,
    (sv.order_id IS NOT NULL)::int AS bad"""

# Plan: one pass over orders, order phases and errors each; the window sorts are the cost
# (about 2 x orders + 2 x order phases + probes rows), no per-order look-ups.
_BULK_SQL = "WITH " + _BASE_CTE + """,
target AS (SELECT b.* FROM base b WHERE {target_filter}),
load_stream AS (
    SELECT b.created_at AS t, 1 AS c, 0 AS f, NULL::bigint AS probe FROM base b WHERE b.consistent
    UNION ALL SELECT b.finished_at, 0, 1, NULL FROM base b WHERE b.lead_time_days IS NOT NULL
    UNION ALL SELECT tg.created_at, 0, 0, tg.id FROM target tg
),
load AS (
    SELECT probe AS id, (cb - cp) - (fb - fp) AS open_orders FROM (
        SELECT probe, sum(c) OVER w AS cb, sum(c) OVER peers AS cp, sum(f) OVER w AS fb, sum(f) OVER peers AS fp
        FROM load_stream
        WINDOW w AS (ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), peers AS (PARTITION BY t)
    ) x WHERE probe IS NOT NULL
),
probe_phases AS (
    SELECT DISTINCT tg.id, tg.created_at, r.phase_id
    FROM target tg JOIN orders_routestep r ON r.product_id = tg.product_id
),
phase_stream AS (
    SELECT op.phase_id, op.started_at AS t, 1 AS s, 0 AS e, NULL::bigint AS probe
    FROM orders_orderphase op
    WHERE op.started_at IS NOT NULL AND (op.ended_at IS NULL OR op.ended_at >= op.started_at)
      AND op.phase_id IN (SELECT phase_id FROM probe_phases)
    UNION ALL
    SELECT op.phase_id, op.ended_at, 0, 1, NULL FROM orders_orderphase op
    WHERE op.started_at IS NOT NULL AND op.ended_at >= op.started_at
      AND op.phase_id IN (SELECT phase_id FROM probe_phases)
    UNION ALL SELECT pp.phase_id, pp.created_at, 0, 0, pp.id FROM probe_phases pp
),
wip AS (
    SELECT probe AS id, sum((sb - sp) - (eb - ep)) AS route_wip FROM (
        SELECT probe, sum(s) OVER w AS sb, sum(s) OVER peers AS sp, sum(e) OVER w AS eb, sum(e) OVER peers AS ep
        FROM phase_stream
        WINDOW w AS (PARTITION BY phase_id ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               peers AS (PARTITION BY phase_id, t)
    ) x WHERE probe IS NOT NULL GROUP BY probe
),
lt_stream AS (
    SELECT b.family, b.product_id, b.finished_at AS t, b.lead_time_days AS lt, NULL::bigint AS probe
    FROM base b WHERE b.lead_time_days IS NOT NULL
    UNION ALL SELECT tg.family, tg.product_id, tg.created_at, NULL, tg.id FROM target tg
),
lt_hist AS (
    SELECT id, (fs - COALESCE(fsp, 0)) / NULLIF(fn - fnp, 0) AS fam_recent_lt, fn - fnp AS fam_recent_n,
           (ps - COALESCE(psp, 0)) / NULLIF(pn - pnp, 0) AS prod_hist_lt, pn - pnp AS prod_hist_n FROM (
        SELECT probe AS id,
               sum(lt) OVER wf AS fs, sum(lt) OVER fpeers AS fsp, count(lt) OVER wf AS fn, count(lt) OVER fpeers AS fnp,
               sum(lt) OVER wp AS ps, sum(lt) OVER ppeers AS psp, count(lt) OVER wp AS pn, count(lt) OVER ppeers AS pnp
        FROM lt_stream
        WINDOW wf AS (PARTITION BY family ORDER BY t RANGE BETWEEN '{recent_days} days' PRECEDING AND CURRENT ROW),
               fpeers AS (PARTITION BY family, t),
               wp AS (PARTITION BY product_id ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               ppeers AS (PARTITION BY product_id, t)
    ) x WHERE id IS NOT NULL
),
risk_stream AS (
    SELECT oc.family, oc.product_id, oc.known_at AS t, oc.bad, 1 AS n, NULL::bigint AS probe FROM outcome oc
    UNION ALL SELECT tg.family, tg.product_id, tg.created_at, 0, 0, tg.id FROM target tg
),
risk_hist AS (
    SELECT id, pn - pnp AS prod_hist_orders, pb - pbp AS prod_hist_bad,
           fn - fnp AS fam_hist_orders, fb - fbp AS fam_hist_bad FROM (
        SELECT probe AS id, sum(n) OVER wp AS pn, sum(n) OVER ppeers AS pnp, sum(bad) OVER wp AS pb,
               sum(bad) OVER ppeers AS pbp, sum(n) OVER wf AS fn, sum(n) OVER fpeers AS fnp,
               sum(bad) OVER wf AS fb, sum(bad) OVER fpeers AS fbp
        FROM risk_stream
        WINDOW wp AS (PARTITION BY product_id ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               ppeers AS (PARTITION BY product_id, t),
               wf AS (PARTITION BY family ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               fpeers AS (PARTITION BY family, t)
    ) x WHERE id IS NOT NULL
)
SELECT """ + _SELECT_COLUMNS + """,
    COALESCE(ld.open_orders, 0) AS open_orders, COALESCE(w.route_wip, 0) AS route_wip,
    lh.fam_recent_lt, COALESCE(lh.fam_recent_n, 0) AS fam_recent_n,
    lh.prod_hist_lt, COALESCE(lh.prod_hist_n, 0) AS prod_hist_n,
    COALESCE(rh.prod_hist_orders, 0) AS prod_hist_orders,
    rh.prod_hist_bad::float / NULLIF(rh.prod_hist_orders, 0) AS prod_hist_bad_rate,
    COALESCE(rh.fam_hist_orders, 0) AS fam_hist_orders,
    rh.fam_hist_bad::float / NULLIF(rh.fam_hist_orders, 0) AS fam_hist_bad_rate
FROM target tg
LEFT JOIN severe sv ON sv.order_id = tg.id
LEFT JOIN route rt ON rt.product_id = tg.product_id
LEFT JOIN load ld ON ld.id = tg.id
LEFT JOIN wip w ON w.id = tg.id
LEFT JOIN lt_hist lh ON lh.id = tg.id
LEFT JOIN risk_hist rh ON rh.id = tg.id
ORDER BY tg.created_at, tg.id
"""

# Plan: for each of a few target orders, index look-ups (orders by created_at / finished_at /
# product_id, order phases by phase and event time, errors by order) instead of whole-table sorts.
_POINT_SQL = """
WITH base AS (
    SELECT o.id, o.created_at, o.finished_at, COALESCE(o.product_id, -1) AS product_id,
           (p.id IS NOT NULL)::int AS product_known, COALESCE(p.family, 'UNKNOWN') AS family,
           p.demould_weight_kg, p.finished_weight_kg, p.gelcoat_deck_qty, p.gelcoat_hull_qty,
           CASE WHEN o.finished_at >= o.created_at
                THEN EXTRACT(EPOCH FROM o.finished_at - o.created_at) / 86400.0 END AS lead_time_days
    FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
    WHERE o.id = ANY(%(ids)s) AND o.created_at IS NOT NULL
),
severe AS (
    SELECT e.order_id, count(*) AS n_severe, max(e.event_time) AS last_severe
    FROM quality_qualityerror e WHERE e.severity >= 2 AND e.order_id = ANY(%(ids)s) GROUP BY e.order_id
),
route AS (
    SELECT r.product_id, count(*) AS route_steps, COALESCE(sum(r.labour_coefficient), 0) AS route_labour,
           COALESCE(sum(r.machine_coefficient), 0) AS route_machine
    FROM orders_routestep r WHERE r.product_id IN (SELECT product_id FROM base) GROUP BY r.product_id
),
past_orders AS (
    -- finished orders of the targets' products or families, finished before the latest target's creation
    SELECT o.id, o.finished_at, COALESCE(o.product_id, -1) AS product_id, COALESCE(p.family, 'UNKNOWN') AS family,
           EXTRACT(EPOCH FROM o.finished_at - o.created_at) / 86400.0 AS lt
    FROM orders_manufacturingorder o LEFT JOIN orders_product p ON p.id = o.product_id
    WHERE o.finished_at >= o.created_at AND o.finished_at < (SELECT max(created_at) FROM base)
      AND (COALESCE(o.product_id, -1) IN (SELECT product_id FROM base)
           OR COALESCE(p.family, 'UNKNOWN') IN (SELECT family FROM base))
),
past_severe AS (
    SELECT e.order_id, max(e.event_time) AS last_severe FROM quality_qualityerror e
    WHERE e.severity >= 2 AND e.order_id IN (SELECT id FROM past_orders) GROUP BY e.order_id
),
past AS (
    SELECT po.*, GREATEST(po.finished_at, ps.last_severe) AS known_at, (ps.order_id IS NOT NULL)::int AS bad
    FROM past_orders po LEFT JOIN past_severe ps ON ps.order_id = po.id
)
SELECT tg.id AS order_id, tg.created_at, tg.finished_at, tg.lead_time_days, tg.product_id, tg.family,
    tg.product_known, tg.demould_weight_kg, tg.finished_weight_kg, tg.gelcoat_deck_qty, tg.gelcoat_hull_qty,
    COALESCE(rt.route_steps, 0) AS route_steps, COALESCE(rt.route_labour, 0) AS route_labour,
    COALESCE(rt.route_machine, 0) AS route_machine,
    EXTRACT(MONTH FROM tg.created_at AT TIME ZONE 'Europe/Lisbon')::int AS created_month,
    EXTRACT(ISODOW FROM tg.created_at AT TIME ZONE 'Europe/Lisbon')::int AS created_weekday,
    COALESCE((SELECT 1 FROM severe s WHERE s.order_id = tg.id), 0) AS bad,
    (SELECT count(*) FROM orders_manufacturingorder m
      WHERE m.created_at < tg.created_at AND (m.finished_at IS NULL OR m.finished_at >= tg.created_at)
        AND (m.finished_at IS NULL OR m.finished_at >= m.created_at)) AS open_orders,
    (SELECT count(*) FROM orders_orderphase op
      WHERE op.phase_id IN (SELECT r.phase_id FROM orders_routestep r WHERE r.product_id = tg.product_id)
        AND op.ended_at >= tg.created_at AND op.event_time >= tg.created_at
        AND op.started_at < tg.created_at AND op.ended_at >= op.started_at)
  + (SELECT count(*) FROM orders_orderphase op
      WHERE op.phase_id IN (SELECT r.phase_id FROM orders_routestep r WHERE r.product_id = tg.product_id)
        AND op.started_at < tg.created_at AND op.ended_at IS NULL) AS route_wip,
    (SELECT avg(pa.lt) FROM past pa WHERE pa.family = tg.family AND pa.finished_at < tg.created_at
        AND pa.finished_at >= tg.created_at - interval '{recent_days} days') AS fam_recent_lt,
    (SELECT count(*) FROM past pa WHERE pa.family = tg.family AND pa.finished_at < tg.created_at
        AND pa.finished_at >= tg.created_at - interval '{recent_days} days') AS fam_recent_n,
    (SELECT avg(pa.lt) FROM past pa WHERE pa.product_id = tg.product_id AND pa.finished_at < tg.created_at)
        AS prod_hist_lt,
    (SELECT count(*) FROM past pa WHERE pa.product_id = tg.product_id AND pa.finished_at < tg.created_at)
        AS prod_hist_n,
    (SELECT count(*) FROM past pa WHERE pa.product_id = tg.product_id AND pa.known_at < tg.created_at)
        AS prod_hist_orders,
    (SELECT avg(pa.bad) FROM past pa WHERE pa.product_id = tg.product_id AND pa.known_at < tg.created_at)
        AS prod_hist_bad_rate,
    (SELECT count(*) FROM past pa WHERE pa.family = tg.family AND pa.known_at < tg.created_at)
        AS fam_hist_orders,
    (SELECT avg(pa.bad) FROM past pa WHERE pa.family = tg.family AND pa.known_at < tg.created_at)
        AS fam_hist_bad_rate
FROM base tg LEFT JOIN route rt ON rt.product_id = tg.product_id
ORDER BY tg.created_at, tg.id
"""


def _fetch(sql: str, params: dict, dates: tuple[str, ...] = ("created_at", "finished_at")) -> pd.DataFrame:
    # JIT off: the planner's row estimates for the event streams are far off, it would JIT-compile
    # this big statement for seconds while the query itself runs in milliseconds to a few seconds.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '128MB'")  # the event-stream sorts fit in memory
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for column in frame.columns:
        if column not in (*dates, "family"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["order_id"] = frame["order_id"].astype("int64")
    frame["product_id"] = frame["product_id"].astype("int64")
    return frame


def order_features(*, which: str = "finished", ids: list[int] | None = None,
                   as_of: datetime | None = None) -> pd.DataFrame:
    """Features of orders at their creation time, one bulk SQL query (which: finished | ids | open: the orders
    open at as_of, by default the data's as-of, by the order state (order_ids_open_at))."""
    if which == "open":
        as_of = as_of or data_as_of()
        which, ids = "ids", [] if as_of is None else order_ids_open_at(as_of=as_of)
    sql = _BULK_SQL.format(target_filter=_TARGET_FILTERS[which], recent_days=RECENT_DAYS)
    return _fetch(sql, {"ids": list(ids or [])})


def order_features_point(*, ids: list[int]) -> pd.DataFrame:
    """The same features for a few orders by index look-ups (prediction time)."""
    return _fetch(_POINT_SQL.format(recent_days=RECENT_DAYS), {"ids": [int(i) for i in ids]})


@dataclass
class Dataset:
    """A dataset with its temporal split (by order creation) and provenance."""

    name: str
    frame: pd.DataFrame
    target: str
    numeric: list[str]
    data_version: int
    as_of: datetime | None
    train_start: datetime | None = None
    validation_start: datetime | None = None
    test_start: datetime | None = None
    test_end: datetime | None = None
    censor_cutoff: datetime | None = None
    splits: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return CATEGORICAL + self.numeric

    def rows(self) -> dict[str, int]:
        return {key: len(value) for key, value in self.splits.items()}


def temporal_split(frame: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict[str, datetime | None]]:
    """70/15/15 of the orders in creation order; orders created at the same instant stay together."""
    if frame.empty:
        return {"train": frame, "validation": frame, "test": frame}, {
            "train_start": None, "validation_start": None, "test_start": None, "test_end": None}
    created = frame["created_at"]
    n = len(frame)
    validation_start = created.iloc[min(int(n * TRAIN_SHARE), n - 1)]
    test_start = created.iloc[min(int(n * (TRAIN_SHARE + VALIDATION_SHARE)), n - 1)]
    splits = {
        "train": frame[created < validation_start],
        "validation": frame[(created >= validation_start) & (created < test_start)],
        "test": frame[created >= test_start],
    }
    dates = {"train_start": created.iloc[0], "validation_start": validation_start,
             "test_start": test_start, "test_end": created.iloc[-1]}
    return splits, dates


def _build(name: str, frame: pd.DataFrame, target: str, numeric: list[str], as_of: datetime | None) -> Dataset:
    cutoff = None
    if as_of is not None and not frame.empty:
        # Right-censoring: among orders created in the last p95-lead-time days before the as-of
        # date, only the quick ones have finished yet; keeping them would bias the test split.
        horizon = float(np.nanpercentile(frame["lead_time_days"], 95))
        cutoff = as_of - pd.Timedelta(days=horizon)
        kept = frame[frame["created_at"] <= cutoff]
        if len(kept) >= 0.5 * len(frame):
            frame = kept
        else:
            cutoff = None
    frame = frame.reset_index(drop=True)
    splits, dates = temporal_split(frame)
    return Dataset(name=name, frame=frame, target=target, numeric=numeric, data_version=data_version(),
                   as_of=as_of, censor_cutoff=cutoff, splits=splits, **dates)


def data_as_of() -> datetime | None:
    """The models' 'now': the data's as-of (prodplan.asof.data_as_of); in a database filled without a load record
    (orders written directly, as the model tests do), the latest order timestamp instead."""
    as_of = loaded_as_of()
    if as_of is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT GREATEST(max(created_at), max(finished_at)) FROM orders_manufacturingorder")
            as_of = cursor.fetchone()[0]
    return as_of


def lead_time_dataset(frame: pd.DataFrame | None = None) -> Dataset:
    """Finished orders; target = days from creation to finish."""
    frame = order_features(which="finished") if frame is None else frame.copy()
    return _build(ModelName.LEAD_TIME, frame, "lead_time_days", LEAD_TIME_NUMERIC, data_as_of())


def risk_dataset(frame: pd.DataFrame | None = None) -> Dataset:
    """Finished orders; target = at least one error of severity >= 2."""
    frame = order_features(which="finished") if frame is None else frame.copy()
    return _build(ModelName.RISK, frame, "bad", RISK_NUMERIC, data_as_of())


def dataset_for(name: str, frame: pd.DataFrame | None = None) -> Dataset:
    """The dataset of a target; `frame` (order_features rows) is shared by lead time and risk only."""
    if name == ModelName.ETA:
        return eta_dataset()
    return lead_time_dataset(frame) if name == ModelName.LEAD_TIME else risk_dataset(frame)


# --- Remaining time (ETA) ------------------------------------------------------------------------
#
# Trained as it is used. Serving asks, at any moment (the data's as-of, a page's as_of, a backtest date), how long
# each order open then has left. So a training example is a moment in a finished order's life, not only a phase
# end: an order with lead time L gets n = ceil(L / MOMENT_STEP_DAYS) moments (at most MAX_MOMENTS), evenly spaced
# between its creation and finish with a seeded offset, t_k = created + (k + u) * L / n with u in [0, 1) from the
# order id and the seed (deterministic, no random state). A longer order gets more moments, as it is open on more
# dates: a weekly snapshot meets an order in proportion to its duration, and so do the training moments.
#
# A moment's features are the order's state then by the order-state model's definitions (orders.selectors
# ORDER_STATE_RULE, the SQL function orders_order_state): only phase rows started or ended by t count (a phase that
# ended later is in progress at t); flow state in_progress (a phase started and not ended), not_started (no row
# touched) else waiting; the phase in progress (latest start wins) and the last done one (latest end wins); time in
# state (since the phase's start, the last end, or creation) and since the last event; reworks started. Plus the
# load (`active_orders`) and the family's recent lead times known at t, with strict inequalities as for lead time.
# The target is remaining_days = finish - t. Serving (eta_open_features) is the same SQL with the moments replaced
# by (open order, as_of) from the order state: one definition of every feature for training and serving.
#
# The load is `active_orders`: orders open at t and created in the RECENT_DAYS before t. Orders that never finish
# (abandoned in the ERP) would otherwise pile up in a plain open-order count, a drift the model reads as load. An
# order leaves the load at the earlier of its finish and its creation + RECENT_DAYS, both known at t when before t.

MOMENT_STEP_DAYS = 1.0
MAX_MOMENTS = 60
PACE_DAYS = 14  # the recent pace: phase steps and lead times of the last two weeks
STEP_CAP_HOURS = 48
STATE_CODES = {"not_started": 0, "waiting": 1, "in_progress": 2}
ETA_NUMERIC = [
    "product_known", "route_steps", "state_code", "done_phases", "route_share_done", "last_phase_id",
    "active_phase_id", "time_in_state_days", "elapsed_days", "reworks", "active_orders", "recent_step_hours",
    "recent_lead_days", "fam_recent_lt", "fam_recent_n", "moment_hour", "moment_weekday",
]

# Training moments: finished orders (finished by known_at when given: what was known then), n seeded moments each.
_ETA_MOMENTS_CTE = """
finished AS (
    SELECT b.*, GREATEST(1, LEAST(ceil(b.lead_time_days / %(step)s), %(max_moments)s))::int AS n,
           mod(abs(b.id * 7919 + %(seed)s * 104729), 9973)::float8 / 9973 AS u
    FROM base b
    WHERE b.lead_time_days IS NOT NULL AND (%(known_at)s::timestamptz IS NULL OR b.finished_at <= %(known_at)s)
),
probes AS (
    SELECT row_number() OVER (ORDER BY f.id, g.k) AS probe, f.id AS order_id, f.family,
           f.created_at + (f.finished_at - f.created_at) * ((g.k + f.u) / f.n) AS t
    FROM finished f CROSS JOIN LATERAL generate_series(0, f.n - 1) AS g(k)
)"""

# Serving: the orders open at as_of by the order state (ORDER_STATE_CALL), in the asked states, at as_of.
_ETA_OPEN_CTE = """
st AS (
    SELECT s.order_id, s.state, s.stall_threshold_seconds FROM {order_state_call} s WHERE s.state = ANY(%(states)s)
),
probes AS (
    SELECT row_number() OVER (ORDER BY st.order_id) AS probe, st.order_id, b.family, %(as_of)s::timestamptz AS t,
           (st.state = 'stalled')::int AS stalled, st.stall_threshold_seconds / 86400.0 AS stall_threshold_days
    FROM st JOIN base b ON b.id = st.order_id
)"""

# Plan: the probes (training: ~lead-time-days per finished order, 0.4 M at full scale; serving: the open orders),
# their orders' phase rows by order id (hash join, one aggregate per probe), and the event-stream windows of the
# lead-time features with one probe row per moment (sorts of about 2 x orders + probes rows), no per-probe look-ups.
# Only one timestamp column per row and float8 numbers (no Decimal) leave the server where it matters.
_ETA_SQL = """
WITH base AS (
    SELECT o.id, o.created_at, o.finished_at, COALESCE(o.product_id, -1) AS product_id,
           (p.id IS NOT NULL)::int AS product_known, COALESCE(p.family, 'UNKNOWN') AS family,
           CASE WHEN o.finished_at >= o.created_at
                THEN EXTRACT(EPOCH FROM o.finished_at - o.created_at) / 86400.0 END AS lead_time_days,
           (o.finished_at IS NULL OR o.finished_at >= o.created_at) AS consistent
    FROM orders_manufacturingorder o
    LEFT JOIN orders_product p ON p.id = o.product_id
    WHERE o.created_at IS NOT NULL
),
route AS (SELECT r.product_id, count(*) AS route_steps FROM orders_routestep r GROUP BY r.product_id),
{probes},
ph AS (
    -- the order state at t (orders_order_state's rules): rows started or ended by t only
    SELECT p.probe,
           count(*) FILTER (WHERE op.ended_at <= p.t) AS done_rows,
           count(*) AS touched_rows,
           count(*) FILTER (WHERE op.is_rework AND op.started_at <= p.t) AS reworks,
           max(op.started_at) FILTER (WHERE op.started_at <= p.t) AS last_start,
           max(op.ended_at) FILTER (WHERE op.ended_at <= p.t) AS last_end,
           max(op.started_at) FILTER (WHERE op.started_at <= p.t AND (op.ended_at IS NULL OR op.ended_at > p.t))
               AS active_since,
           (array_agg(op.phase_id ORDER BY op.started_at DESC, op.sequence DESC NULLS LAST, op.id DESC)
               FILTER (WHERE op.started_at <= p.t AND (op.ended_at IS NULL OR op.ended_at > p.t)))[1] AS active_phase,
           (array_agg(op.phase_id ORDER BY op.ended_at DESC, op.sequence DESC NULLS LAST, op.id DESC)
               FILTER (WHERE op.ended_at <= p.t))[1] AS last_done_phase
    FROM probes p JOIN orders_orderphase op ON op.order_id = p.order_id
    WHERE op.phase_id IS NOT NULL AND (op.started_at <= p.t OR op.ended_at <= p.t)
    GROUP BY p.probe
),
load_stream AS (
    SELECT b.created_at AS t, 1 AS c, 0 AS f, NULL::bigint AS probe FROM base b WHERE b.consistent
    UNION ALL
    SELECT LEAST(b.finished_at, b.created_at + interval '{recent_days} days'), 0, 1, NULL
    FROM base b WHERE b.consistent
    UNION ALL SELECT p.t, 0, 0, p.probe FROM probes p
),
load AS (
    SELECT probe, (cb - cp) - (fb - fp) AS active_orders FROM (
        SELECT probe, sum(c) OVER w AS cb, sum(c) OVER peers AS cp, sum(f) OVER w AS fb, sum(f) OVER peers AS fp
        FROM load_stream
        WINDOW w AS (ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), peers AS (PARTITION BY t)
    ) x WHERE probe IS NOT NULL
),
{pace}lt_stream AS (
    SELECT b.family, b.finished_at AS t, b.lead_time_days AS lt, NULL::bigint AS probe
    FROM base b WHERE b.lead_time_days IS NOT NULL
    UNION ALL SELECT p.family, p.t, NULL, p.probe FROM probes p
),
lt_hist AS (
    -- lt stays numeric here: a float8 sum has no inverse transition, the moving 90-day frame would be
    -- re-summed for every row (86 s instead of 5 s on the full-scale demo data)
    SELECT probe, (fs - COALESCE(fsp, 0)) / NULLIF(fn - fnp, 0) AS fam_recent_lt, fn - fnp AS fam_recent_n,
           (rs - COALESCE(rsp, 0)) / NULLIF(rn - rnp, 0) AS recent_lead_days FROM (
        SELECT probe, sum(lt) OVER wf AS fs, sum(lt) OVER fpeers AS fsp,
               count(lt) OVER wf AS fn, count(lt) OVER fpeers AS fnp,
               sum(lt) OVER wr AS rs, sum(lt) OVER rpeers AS rsp, count(lt) OVER wr AS rn, count(lt) OVER rpeers AS rnp
        FROM lt_stream
        WINDOW wf AS (PARTITION BY family ORDER BY t RANGE BETWEEN '{recent_days} days' PRECEDING AND CURRENT ROW),
               fpeers AS (PARTITION BY family, t),
               wr AS (ORDER BY t RANGE BETWEEN '{pace_days} days' PRECEDING AND CURRENT ROW), rpeers AS (PARTITION BY t)
    ) x WHERE probe IS NOT NULL
)
SELECT p.order_id, b.created_at, {finish_columns}, b.product_id, b.family, b.product_known,
    COALESCE(rt.route_steps, 0) AS route_steps,
    CASE WHEN ph.active_phase IS NOT NULL THEN 2 WHEN ph.probe IS NULL THEN 0 ELSE 1 END AS state_code,
    COALESCE(ph.done_rows, 0) AS done_phases,
    LEAST(COALESCE(ph.done_rows, 0), rt.route_steps)::float8 / NULLIF(rt.route_steps, 0) AS route_share_done,
    COALESCE(ph.last_done_phase, -1) AS last_phase_id, COALESCE(ph.active_phase, -1) AS active_phase_id,
    (EXTRACT(EPOCH FROM p.t - CASE WHEN ph.active_phase IS NOT NULL THEN ph.active_since
                                   WHEN ph.probe IS NULL THEN b.created_at
                                   ELSE COALESCE(ph.last_end, ph.last_start) END) / 86400.0)::float8 AS time_in_state_days,
    (EXTRACT(EPOCH FROM p.t - GREATEST(b.created_at, ph.last_start, ph.last_end)) / 86400.0)::float8 AS idle_days,
    (EXTRACT(EPOCH FROM p.t - b.created_at) / 86400.0)::float8 AS elapsed_days,
    COALESCE(ph.reworks, 0) AS reworks, p.t AS moment_at,
    COALESCE(ld.active_orders, 0) AS active_orders, pc.recent_step_hours::float8, lh.recent_lead_days::float8,
    lh.fam_recent_lt::float8, COALESCE(lh.fam_recent_n, 0) AS fam_recent_n,
    EXTRACT(HOUR FROM p.t AT TIME ZONE 'Europe/Lisbon')::int AS moment_hour,
    EXTRACT(ISODOW FROM p.t AT TIME ZONE 'Europe/Lisbon')::int AS moment_weekday
    {extra_columns}
FROM probes p
JOIN base b ON b.id = p.order_id
LEFT JOIN route rt ON rt.product_id = b.product_id
LEFT JOIN ph ON ph.probe = p.probe
LEFT JOIN load ld ON ld.probe = p.probe
LEFT JOIN pace pc ON pc.probe = p.probe
LEFT JOIN lt_hist lh ON lh.probe = p.probe
ORDER BY b.created_at, p.order_id, p.t
"""

# The pace at each probe's moment, for many moments (training): one stream over every phase end.
_ETA_PACE_STREAM_CTE = """
step_stream AS (
    -- how fast work flows these days: hours between consecutive phase ends of an order (its first: since its
    -- creation), capped at {step_cap_hours} h (longer gaps are waits for the gate, shortages, weekends), ended in the
    -- {pace_days} days before t; numeric, so the moving frame keeps an inverse transition (see lt_hist)
    SELECT g.t, LEAST(EXTRACT(EPOCH FROM g.t - g.prev) / 3600.0, {step_cap_hours}) AS h, NULL::bigint AS probe FROM (
        SELECT op.ended_at AS t,
               COALESCE(lag(op.ended_at) OVER (PARTITION BY op.order_id ORDER BY op.ended_at, op.sequence, op.id),
                        b.created_at) AS prev
        FROM orders_orderphase op JOIN base b ON b.id = op.order_id
        WHERE op.ended_at IS NOT NULL AND op.phase_id IS NOT NULL
    ) g WHERE g.t >= g.prev
    UNION ALL SELECT p.t, NULL, p.probe FROM probes p
),
pace AS (
    SELECT probe, (sw - COALESCE(sp, 0)) / NULLIF(nw - np, 0) AS recent_step_hours FROM (
        SELECT probe, sum(h) OVER w AS sw, sum(h) OVER peers AS sp, count(h) OVER w AS nw, count(h) OVER peers AS np
        FROM step_stream
        WINDOW w AS (ORDER BY t RANGE BETWEEN '{pace_days} days' PRECEDING AND CURRENT ROW), peers AS (PARTITION BY t)
    ) x WHERE probe IS NOT NULL
),"""

# The same pace at the one as_of of serving: only the phase rows of the orders with a phase ended in the PACE_DAYS
# before as_of (partitions pruned on event_time, which is a row's end when it has one), not a sort of every row.
_ETA_PACE_AT_CTE = """
pace AS (
    SELECT p.probe, x.recent_step_hours FROM probes p CROSS JOIN (
        SELECT avg(LEAST(EXTRACT(EPOCH FROM g.t - g.prev) / 3600.0, {step_cap_hours})) AS recent_step_hours FROM (
            SELECT op.ended_at AS t,
                   COALESCE(lag(op.ended_at) OVER (PARTITION BY op.order_id ORDER BY op.ended_at, op.sequence, op.id),
                            b.created_at) AS prev
            FROM orders_orderphase op JOIN base b ON b.id = op.order_id
            WHERE op.ended_at < %(as_of)s AND op.phase_id IS NOT NULL
              AND op.order_id IN (
                  SELECT r.order_id FROM orders_orderphase r
                  WHERE r.event_time >= %(as_of)s - interval '{pace_days} days'
                    AND r.ended_at >= %(as_of)s - interval '{pace_days} days' AND r.ended_at < %(as_of)s)
        ) g WHERE g.t >= g.prev AND g.t >= %(as_of)s - interval '{pace_days} days'
    ) x
),"""

_ETA_TRAIN_COLUMNS = ("b.finished_at, b.lead_time_days::float8 AS lead_time_days, "
                      "(EXTRACT(EPOCH FROM b.finished_at - p.t) / 86400.0)::float8 AS remaining_days")
_ETA_OPEN_COLUMNS = "NULL::timestamptz AS finished_at, NULL::float8 AS lead_time_days, NULL::float8 AS remaining_days"
_ETA_DATES = ("created_at", "finished_at", "moment_at")


def _eta_sql(*, probes: str, pace: str, finish_columns: str, extra_columns: str = "") -> str:
    """_ETA_SQL with its moments (training or serving) and its pace (a stream, or the one as_of) put in."""
    sql = (_ETA_SQL.replace("{probes}", probes.strip("\n")).replace("{pace}", pace.strip("\n") + "\n")
           .replace("{finish_columns}", finish_columns).replace("{extra_columns}", extra_columns))
    return sql.format(recent_days=RECENT_DAYS, pace_days=PACE_DAYS, step_cap_hours=STEP_CAP_HOURS)


def eta_features(*, known_at: datetime | None = None, seed: int = 0) -> pd.DataFrame:
    """Seeded moments of every finished order (finished by known_at when given: only what was known then) with the
    order's state and features at each moment and the remaining days (one SQL query)."""
    sql = _eta_sql(probes=_ETA_MOMENTS_CTE, pace=_ETA_PACE_STREAM_CTE, finish_columns=_ETA_TRAIN_COLUMNS)
    params = {"step": MOMENT_STEP_DAYS, "max_moments": MAX_MOMENTS, "seed": int(seed), "known_at": known_at}
    return _fetch(sql, params, _ETA_DATES)


def eta_open_features(*, as_of: datetime, ids: list[int] | None = None, with_stalled: bool = False) -> pd.DataFrame:
    """The orders open at `as_of` (all, or these ids) that a remaining time is predicted for, in their state at
    `as_of`, with the ETA features (one SQL query, the same features as training's moments). Open = the order
    state's active orders at as_of (orders.selectors: created by as_of, not finished by then, neither stalled nor
    abandoned), whatever happened after as_of. with_stalled adds the stalled ones, flagged stalled = 1 with
    idle_days and stall_threshold_days: the caller answers "stalled", never an ETA."""
    states = [str(s) for s in ACTIVE_STATES] + ([str(OrderState.STALLED)] if with_stalled else [])
    sql = _eta_sql(probes=_ETA_OPEN_CTE.replace("{order_state_call}", ORDER_STATE_CALL), pace=_ETA_PACE_AT_CTE,
                   finish_columns=_ETA_OPEN_COLUMNS, extra_columns=", p.stalled, p.stall_threshold_days")
    params = {**order_state_params(as_of=as_of, order_ids=None if ids is None else [int(i) for i in ids]),
              "states": states}
    return _fetch(sql, params, _ETA_DATES)


def order_ids_open_at(*, as_of: datetime) -> list[int]:
    """The orders open at as_of by the order state (created by then, not finished by then, not abandoned;
    stalled ones included): what lead time and risk are predicted for."""
    return [r["order_id"] for r in open_orders_at(as_of=as_of) if r["state"] in OPEN_STATES]


def eta_dataset(frame: pd.DataFrame | None = None, *, known_at: datetime | None = None, seed: int = 0) -> Dataset:
    """Moments of finished orders; target = days from the moment to the order's finish. The split is by order
    creation (all moments of an order fall in the same split), censoring as for lead time. known_at: build it
    from what was known then (orders finished by known_at, censored at known_at) instead of the data's as-of."""
    frame = eta_features(known_at=known_at, seed=seed) if frame is None else frame.copy()
    return _build(ModelName.ETA, frame, "remaining_days", ETA_NUMERIC, known_at or data_as_of())
