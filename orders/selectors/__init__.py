"""Reads of the orders domain: the order state, order status, timelines, routes, WIP, bottlenecks, risk and KPIs.

Definitions used throughout (and in the API schema):

- The order state at the as-of time T (ORDER_STATE_RULE): the one definition of where every order is, the
  SQL function orders_order_state (migration orders.0004), always called through ORDER_STATE_CALL with
  order_state_params(as_of=T). Only what was known at T: orders created by T, phase starts and ends at or
  before T; thresholds from orders finished (and gaps measured) before T.
- Lead time of an order: finished - created, in days (ManufacturingOrder.lead_time_days); negative
  values are data errors and are left out. Percentiles use percentile_cont (linear).
- Order status at T (in the state function): DONE (finished), ABANDONED, STALLED; otherwise LATE when its
  age exceeds the product's ORDER_LATE_PERCENTILE lead time, AT_RISK when it exceeds the
  ORDER_AT_RISK_PERCENTILE one, CREATED when no phase has started, else IN_PROGRESS. The percentiles are of
  the orders finished by T: the product's own with at least MIN_HISTORY_FOR_PRODUCT_PERCENTILE of them, else
  its family's (when that has enough), else all orders'. Basis: theoretical.
- WIP at T: the active orders (not started, waiting, in progress); stalled and abandoned orders are apart.
- Bottlenecks at T: phases ranked by the queue forecast for the next 4 weeks from the measured flow (BOTTLENECK_RULE).

The package by topic: common (helpers, phase names), state (the order state), order_list (list and detail),
routes (timeline, standard and executed routes), schedule (WIP per phase), bottlenecks, risk, kpis; the pure
maths (risk score, route classification, age buckets) is orders.maths. Import the names from orders.selectors.
"""

from orders.selectors.bottlenecks import (  # noqa: F401
    BOTTLENECK_BACKTEST_HORIZON_DAYS,
    BOTTLENECK_MIN_QUEUE_EVENTS,
    BOTTLENECK_RECENT_WEIGHT,
    BOTTLENECK_ROUTE_STEPS,
    BOTTLENECK_RULE,
    BOTTLENECK_WAIT_DAYS,
    BOTTLENECK_WINDOW_DAYS,
    FLOW_LOOKBACK_DAYS,
    bottleneck_backtest,
    bottleneck_backtest_score,
    bottleneck_rule,
    bottleneck_table,
    bottlenecks,
    expected_visits,
    measured_flow,
    rank_bottlenecks,
    standard_routes,
)
from orders.selectors.common import (  # noqa: F401
    DAY,
    TREND_WEEKS,
    UNKNOWN_PRODUCT,
    EpochSeconds,
    phase_choices,
    phase_names,
)
from orders.selectors.kpis import (  # noqa: F401
    employee_match_rate,
    kpi_by_employee,
    kpi_by_phase,
    kpi_by_product,
    kpi_overview,
    kpi_range,
)
from orders.selectors.order_list import (  # noqa: F401
    ORDER_FIELDS,
    ORDER_SORTS,
    annotate_id_text,
    order_detail,
    order_ids_matching,
    order_queryset,
    order_row_payload,
    order_rows,
    order_rows_by_id,
    order_tiles,
    sorted_order_ids,
)
from orders.selectors.risk import (  # noqa: F401
    RISK_METHOD,
    risk_queue,
    risk_scores,
)
from orders.selectors.routes import (  # noqa: F401
    order_phases,
    phase_medians_known_at,
    route,
    routes_warm,
)
from orders.selectors.schedule import (  # noqa: F401
    schedule_current,
)
from orders.selectors.state import (  # noqa: F401
    ACTIVE_STATES,
    OPEN_STATES,
    ORDER_STATE_CALL,
    ORDER_STATE_RULE,
    STALL_MIN_GAPS,
    STALL_PERCENTILE,
    STALL_RULE,
    STALL_WINDOW_DAYS,
    active_orders_at,
    export_has_unstarted_rows,
    lead_time_thresholds,
    open_orders_at,
    order_ids_where,
    order_state_params,
    order_states,
    phases_since,
    stall_learnt_at,
    stall_thresholds,
    stalled_block,
    stalled_orders,
    state_payload,
    state_summary,
)

