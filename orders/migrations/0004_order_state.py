"""The order-state model: a steward's abandonment mark and the SQL function that places every order at an as-of time."""

from django.db import migrations, models

ORDER_STATE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION orders_order_state(
    p_as_of timestamptz, p_snapshot_at timestamptz, p_stall jsonb, p_lead jsonb, p_order_ids bigint[] DEFAULT NULL
) RETURNS TABLE (
    order_id bigint, product_id bigint, created_at timestamptz, finished_at timestamptz,
    state text, flow_state text, phase_id bigint, placement_basis text, since timestamptz,
    last_event_at timestamptz, reworks integer, stall_threshold_seconds double precision,
    age_days double precision, status text, threshold_scope text, at_risk_days double precision,
    late_days double precision, p75_days double precision
) LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
-- The one definition of where every order is at p_as_of (see orders.selectors.ORDER_STATE_RULE).
-- Only what was known at p_as_of: orders created by then, phase starts and ends at or before it.
WITH known AS MATERIALIZED (
    SELECT o.id, o.product_id, o.created_at, o.finished_at, o.current_phase_id,
           (o.finished_at IS NOT NULL AND o.finished_at <= p_as_of) AS is_finished,
           EXISTS (SELECT 1 FROM orders_orderabandonment a WHERE a.order_id = o.id) AS is_abandoned
    FROM orders_manufacturingorder o
    WHERE (o.created_at <= p_as_of OR o.created_at IS NULL)
      AND (p_order_ids IS NULL OR o.id = ANY (p_order_ids))
),
rows_at AS MATERIALIZED (
    -- the phase rows of the orders open at p_as_of, cut at p_as_of (orders_op_order_seq_idx per partition)
    SELECT p.order_id, p.id, p.phase_id, p.sequence, p.is_rework,
           CASE WHEN p.started_at <= p_as_of THEN p.started_at END AS started_at,
           CASE WHEN p.ended_at <= p_as_of THEN p.ended_at END AS ended_at
    FROM orders_orderphase p
    WHERE p.order_id = ANY (ARRAY(SELECT k.id FROM known k WHERE NOT k.is_finished))
      AND p.phase_id IS NOT NULL
      -- An export that writes a phase row only once work starts (p_stall ->> 'unstarted_rows' false) had no
      -- row at p_as_of for a phase started later: such a row is not known then.
      AND (coalesce((p_stall ->> 'unstarted_rows')::boolean, true)
           OR p.started_at <= p_as_of OR p.ended_at <= p_as_of)
),
progress AS (
    SELECT r.order_id,
           max(r.started_at) AS last_start,
           max(r.ended_at) AS last_end,
           count(*) FILTER (WHERE r.is_rework AND r.started_at IS NOT NULL)::int AS reworks,
           count(*) FILTER (WHERE r.started_at IS NOT NULL OR r.ended_at IS NOT NULL) AS touched_rows,
           (array_agg(r.phase_id ORDER BY r.started_at DESC, r.sequence DESC NULLS LAST, r.id DESC)
               FILTER (WHERE r.started_at IS NOT NULL AND r.ended_at IS NULL))[1] AS active_phase,
           max(r.started_at) FILTER (WHERE r.started_at IS NOT NULL AND r.ended_at IS NULL) AS active_since,
           max(r.sequence) FILTER (WHERE r.started_at IS NOT NULL OR r.ended_at IS NOT NULL) AS reached_sequence,
           (array_agg(r.phase_id ORDER BY r.ended_at DESC, r.sequence DESC NULLS LAST, r.id DESC)
               FILTER (WHERE r.ended_at IS NOT NULL))[1] AS last_done_phase,
           array_agg(DISTINCT r.phase_id) FILTER (WHERE r.started_at IS NOT NULL OR r.ended_at IS NOT NULL) AS touched
    FROM rows_at r GROUP BY r.order_id
),
next_row AS (
    -- the first phase row not started at p_as_of after the furthest row reached (by sequence, then id)
    SELECT DISTINCT ON (r.order_id) r.order_id, r.phase_id
    FROM rows_at r LEFT JOIN progress pg ON pg.order_id = r.order_id
    WHERE r.started_at IS NULL AND r.ended_at IS NULL
      AND (pg.reached_sequence IS NULL OR r.sequence IS NULL OR r.sequence > pg.reached_sequence)
    ORDER BY r.order_id, r.sequence NULLS LAST, r.id
),
preplaced AS MATERIALIZED (
    SELECT k.*, pg.last_start, pg.last_end, coalesce(pg.reworks, 0) AS reworks,
           coalesce(pg.touched_rows, 0) AS touched_rows, pg.active_phase, pg.active_since, pg.last_done_phase,
           nr.phase_id AS next_row_phase,
           CASE WHEN NOT k.is_finished AND pg.active_phase IS NULL AND nr.phase_id IS NULL THEN (
               -- the next step of the product's standard route after the furthest step reached
               SELECT rs.phase_id FROM orders_routestep rs
               WHERE rs.product_id = k.product_id
                 AND rs.sequence > coalesce((
                     SELECT max(r2.sequence) FROM orders_routestep r2
                     WHERE r2.product_id = k.product_id AND r2.phase_id = ANY (pg.touched)), -2147483648)
               ORDER BY rs.sequence, rs.phase_id LIMIT 1) END AS route_phase
    FROM known k
    LEFT JOIN progress pg ON pg.order_id = k.id
    LEFT JOIN next_row nr ON nr.order_id = k.id
),
placed AS MATERIALIZED (
    -- no route step either: the phase that most often followed the last finished one (or came first) in the
    -- orders seen before p_as_of (orders.selectors.stall_thresholds learns it; p_stall -> 'next')
    SELECT pr.*, CASE WHEN NOT pr.is_finished AND pr.active_phase IS NULL AND pr.next_row_phase IS NULL
                           AND pr.route_phase IS NULL
                      THEN (p_stall -> 'next' ->> coalesce(pr.last_done_phase::text, 'start'))::bigint END AS observed_next
    FROM preplaced pr
),
positioned AS (
    SELECT pl.*,
           CASE WHEN pl.is_finished THEN NULL
                WHEN pl.active_phase IS NOT NULL THEN pl.active_phase
                WHEN pl.next_row_phase IS NOT NULL THEN pl.next_row_phase
                WHEN pl.route_phase IS NOT NULL THEN pl.route_phase
                WHEN pl.observed_next IS NOT NULL THEN pl.observed_next
                WHEN p_as_of >= p_snapshot_at THEN pl.current_phase_id END AS position_phase,
           CASE WHEN pl.is_finished THEN 'none'
                WHEN pl.active_phase IS NOT NULL THEN 'phase_in_progress'
                WHEN pl.next_row_phase IS NOT NULL THEN 'next_phase_row'
                WHEN pl.route_phase IS NOT NULL THEN 'route_next_step'
                WHEN pl.observed_next IS NOT NULL THEN 'observed_next_phase'
                WHEN p_as_of >= p_snapshot_at AND pl.current_phase_id IS NOT NULL THEN 'erp_current_phase'
                ELSE 'unknown' END AS basis,
           CASE WHEN pl.is_finished THEN 'finished'
                WHEN pl.active_phase IS NOT NULL THEN 'in_progress'
                WHEN pl.touched_rows = 0 THEN 'not_started'
                ELSE 'waiting' END AS flow_state,
           greatest(pl.created_at, pl.last_start, pl.last_end) AS last_event
    FROM placed pl
),
judged AS (
    SELECT ps.*, th.seconds,
           CASE WHEN ps.is_finished THEN 'finished'
                WHEN ps.is_abandoned THEN 'abandoned'
                WHEN extract(epoch FROM p_as_of - ps.last_event) > th.seconds THEN 'stalled'
                ELSE ps.flow_state END AS state,
           CASE WHEN ps.is_finished THEN NULL ELSE extract(epoch FROM p_as_of - ps.created_at) / 86400.0 END AS age,
           coalesce(p_lead -> 'product' -> (ps.product_id::text), p_lead -> 'global') AS lead
    FROM positioned ps
    CROSS JOIN LATERAL (
        SELECT CASE WHEN ps.is_finished THEN NULL
                    ELSE coalesce((p_stall -> 'phase' ->> ps.position_phase::text)::float8,
                                  (p_stall ->> 'default')::float8) END AS seconds
    ) th
)
SELECT j.id, j.product_id, j.created_at, CASE WHEN j.is_finished THEN j.finished_at END,
       j.state, j.flow_state, j.position_phase, j.basis,
       CASE WHEN j.state = 'finished' THEN j.finished_at
            WHEN j.state IN ('stalled', 'abandoned') THEN j.last_event
            WHEN j.state = 'in_progress' THEN j.active_since
            WHEN j.state = 'waiting' THEN coalesce(j.last_end, j.last_start)
            ELSE j.created_at END,
       j.last_event, j.reworks, j.seconds, j.age,
       CASE j.state WHEN 'finished' THEN 'DONE' WHEN 'abandoned' THEN 'ABANDONED' WHEN 'stalled' THEN 'STALLED'
            ELSE CASE WHEN j.age > (j.lead ->> 'late_days')::float8 THEN 'LATE'
                      WHEN j.age > (j.lead ->> 'at_risk_days')::float8 THEN 'AT_RISK'
                      WHEN j.state = 'not_started' THEN 'CREATED'
                      ELSE 'IN_PROGRESS' END END,
       j.lead ->> 'scope', (j.lead ->> 'at_risk_days')::float8, (j.lead ->> 'late_days')::float8,
       (j.lead ->> 'p75')::float8
FROM judged j
$fn$;
"""

DROP_ORDER_STATE_FUNCTION = "DROP FUNCTION IF EXISTS orders_order_state(timestamptz, timestamptz, jsonb, jsonb, bigint[])"


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0003_aggregate_tables"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderAbandonment",
            fields=[
                ("order_id", models.BigIntegerField(primary_key=True, serialize=False, verbose_name="order (Of_Id)")),
                ("reason", models.TextField(blank=True)),
                ("marked_by", models.CharField(blank=True, help_text="Username of the steward who marked it.", max_length=150)),
                ("marked_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "verbose_name": "abandoned order",
                "verbose_name_plural": "abandoned orders",
                "ordering": ["-marked_at", "-order_id"],
            },
        ),
        migrations.RunSQL(ORDER_STATE_FUNCTION, DROP_ORDER_STATE_FUNCTION),
    ]
