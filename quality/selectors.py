"""Quality (ZDM) analytics: overview, rates by phase and product, heatmap, defect escapes and risk baseline.

Every read is one SQL statement over the quality, orders and catalogue tables (raw SQL, our own:
no dependency on other apps' selectors). Errors count when their derived time (QualityError.event_time:
end of the phase where found, else the culprit phase, else the order's creation) is at or before the
as-of moment; undated errors always count (they cannot be placed in time) and are reported.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders.selectors import phase_names
from prodplan.cache import versioned_cache
from prodplan.gates import OBSERVED, THEORETICAL, figure, not_supported, ratio
from quality.choices import Severity
from quality.models import QualityError

SEVERITIES = [int(s) for s in Severity]
SEVERITY_LABELS = {int(s): s.label for s in Severity}
WILSON_Z95 = 1.959963984540054
DEFAULT_MIN_SAMPLE = 30

# The errors in scope at the as-of moment; every statement below starts from it.
ERR_CTE = """
err AS MATERIALIZED (
    SELECT e.id, e.order_id, e.severity, e.found_phase_id, e.found_order_phase_id,
           e.culprit_order_phase_id, e.description, e.event_time
    FROM quality_qualityerror e
    WHERE e.event_time IS NULL OR e.event_time <= %(as_of)s
)"""

# The same errors narrowed to a period [since, until) on their derived time (both None: ERR_CTE's errors); with a
# period, undated errors cannot be placed in it and are left out.
ERR_PERIOD_CTE = """
err AS MATERIALIZED (
    SELECT e.id, e.order_id, e.severity, e.found_phase_id, e.found_order_phase_id,
           e.culprit_order_phase_id, e.description, e.event_time
    FROM quality_qualityerror e
    WHERE (e.event_time IS NULL OR e.event_time <= %(as_of)s)
      AND (%(since)s::timestamptz IS NULL OR e.event_time >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR e.event_time < %(until)s::timestamptz)
)"""


def _execute(cursor, sql: str, params: dict) -> None:
    """Run one analytic statement with JIT off: on these CTE plans PostgreSQL's row estimates overshoot
    and JIT compilation costs seconds (measured: 2.7 s of a 3.3 s escapes query) for nothing."""
    cursor.execute("SET LOCAL jit = off")
    cursor.execute(sql, params)


def _fetch_json(sql: str, params: dict):
    with transaction.atomic(), connection.cursor() as cursor:
        _execute(cursor, sql, params)
        return cursor.fetchone()[0]


def _fetch_all(sql: str, params: dict) -> list[tuple]:
    with transaction.atomic(), connection.cursor() as cursor:
        _execute(cursor, sql, params)
        return cursor.fetchall()


def _severity_split(counts: dict, total: int) -> list[dict]:
    return [
        {"severity": s, "label": SEVERITY_LABELS[s], "count": int(counts.get(s) or 0),
         "share": _round(ratio(int(counts.get(s) or 0), total))}
        for s in SEVERITIES
    ]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


# --------------------------------------------------------------------------------------------- overview

OVERVIEW_SQL = f"""
WITH {ERR_PERIOD_CTE},
cul AS MATERIALIZED (
    -- culprit order phase -> its catalogue phase; index scan on each partition's (id, event_time) pkey
    SELECT err.id, err.severity, op.phase_id
    FROM err JOIN orders_orderphase op ON op.id = err.culprit_order_phase_id
)
SELECT json_build_object(
    'total', (SELECT count(*) FROM err),
    'undated', (SELECT count(*) FROM err WHERE event_time IS NULL),
    'orders', (SELECT count(*) FROM orders_manufacturingorder mo
               WHERE (mo.created_at IS NULL OR mo.created_at <= %(as_of)s)
                 AND (%(since)s::timestamptz IS NULL OR mo.created_at >= %(since)s::timestamptz)
                 AND (%(until)s::timestamptz IS NULL OR mo.created_at < %(until)s::timestamptz)),
    'errors_on_known_orders', (SELECT count(*) FROM err
                               WHERE EXISTS (SELECT 1 FROM orders_manufacturingorder mo WHERE mo.id = err.order_id)),
    'orders_with_errors', (SELECT count(DISTINCT order_id) FROM err),
    'by_severity', (SELECT json_object_agg(severity, n) FROM (SELECT severity, count(*) AS n FROM err GROUP BY 1) s),
    'found_known', (SELECT count(*) FROM err JOIN orders_phase ph ON ph.id = err.found_phase_id),
    'by_found_phase', (
        SELECT json_agg(json_build_object('phase_id', phase_id, 'name', name, 'count', n) ORDER BY n DESC, phase_id)
        FROM (SELECT err.found_phase_id AS phase_id, ph.name, count(*) AS n
              FROM err LEFT JOIN orders_phase ph ON ph.id = err.found_phase_id GROUP BY 1, 2) s),
    'culprit_filled', (SELECT count(*) FROM err WHERE culprit_order_phase_id IS NOT NULL),
    'culprit_resolved', (SELECT count(*) FROM cul),
    'by_culprit_phase', (
        SELECT json_agg(json_build_object('phase_id', phase_id, 'name', name, 'count', n) ORDER BY n DESC, phase_id)
        FROM (SELECT cul.phase_id, ph.name, count(*) AS n
              FROM cul LEFT JOIN orders_phase ph ON ph.id = cul.phase_id GROUP BY 1, 2) s),
    'trend', (
        SELECT json_agg(json_build_object('month', month, 'count', n, 's1', s1, 's2', s2, 's3', s3) ORDER BY month)
        FROM (SELECT to_char(date_trunc('month', event_time AT TIME ZONE %(tz)s), 'YYYY-MM') AS month,
                     count(*) AS n, count(*) FILTER (WHERE severity = 1) AS s1,
                     count(*) FILTER (WHERE severity = 2) AS s2, count(*) FILTER (WHERE severity = 3) AS s3
              FROM err WHERE event_time IS NOT NULL GROUP BY 1) t),
    'distinct_descriptions', (SELECT count(DISTINCT description) FROM err),
    'pareto', (
        SELECT json_agg(json_build_object('description', description, 'count', n) ORDER BY n DESC, description)
        FROM (SELECT description, count(*) AS n FROM err GROUP BY 1 ORDER BY n DESC, description LIMIT %(top)s) p)
)
"""


def period_bounds(day_from: date | None, day_to: date | None) -> tuple[datetime | None, datetime | None]:
    """The quality period of the pages and the API: [day_from 00:00, day_to + 1 day 00:00) in local time (both days
    included); None where a side is open."""
    since = timezone.make_aware(datetime.combine(day_from, time.min)) if day_from else None
    until = timezone.make_aware(datetime.combine(day_to + timedelta(days=1), time.min)) if day_to else None
    return since, until


@versioned_cache("quality.overview", warm=True)
def quality_overview(*, as_of: datetime, top: int = 20, since: datetime | None = None,
                     until: datetime | None = None) -> dict:
    """Totals, errors per order, by severity / found phase / culprit phase, monthly trend and Pareto; with a period
    [since, until) the errors dated in it (and, for errors per order, the orders created in it)."""
    raw = _fetch_json(OVERVIEW_SQL, {"as_of": as_of, "tz": settings.TIME_ZONE, "top": top,
                                     "since": since, "until": until})
    total = raw["total"]
    by_sev = {int(k): v for k, v in (raw["by_severity"] or {}).items()}
    pareto, cumulative = [], 0
    for row in raw["pareto"] or []:
        cumulative += row["count"]
        pareto.append({**row, "share": _round(ratio(row["count"], total)),
                       "cumulative_share": _round(ratio(cumulative, total))})
    return {
        "as_of": as_of.isoformat(),
        "total_errors": figure(total, basis=OBSERVED, coverage=1.0 if total else None),
        "orders": raw["orders"],
        "orders_with_errors": raw["orders_with_errors"],
        "errors_per_order": figure(
            _round(ratio(raw["errors_on_known_orders"], raw["orders"])), basis=OBSERVED,
            coverage=ratio(raw["errors_on_known_orders"], total),
            numerator=raw["errors_on_known_orders"], denominator=raw["orders"],
            note="errors on orders present in the orders table / orders created up to as_of",
        ),
        "by_severity": figure(_severity_split(by_sev, total), basis=OBSERVED, coverage=1.0 if total else None),
        "by_found_phase": figure(
            [{**r, "share": _round(ratio(r["count"], total))} for r in raw["by_found_phase"] or []],
            basis=OBSERVED, coverage=ratio(raw["found_known"], total),
        ),
        "by_culprit_phase": figure(
            [{**r, "share": _round(ratio(r["count"], raw["culprit_resolved"]))} for r in raw["by_culprit_phase"] or []],
            basis=OBSERVED, coverage=ratio(raw["culprit_resolved"], total),
            culprit_filled=raw["culprit_filled"], culprit_resolved=raw["culprit_resolved"],
            culprit_filled_share=_round(ratio(raw["culprit_filled"], total)),
            note="share of errors whose culprit order phase is filled and found among the order phases",
        ),
        "trend_by_month": figure(
            [{"month": r["month"], "count": r["count"],
              "by_severity": {str(s): r[f"s{s}"] for s in SEVERITIES}} for r in raw["trend"] or []],
            basis=OBSERVED, coverage=ratio(total - raw["undated"], total), undated=raw["undated"],
            time_rule="error time = end of the phase where found, else the culprit phase, else the order's creation "
                      "(Europe/Lisbon months)",
        ),
        "pareto": figure(pareto, basis=OBSERVED, coverage=1.0 if total else None, top=top,
                         distinct_descriptions=raw["distinct_descriptions"]),
    }


# --------------------------------------------------------------------------------------------- by phase

BY_PHASE_SQL = f"""
WITH {ERR_CTE},
exe AS (
    -- executions: finished order phases (ended up to as_of); seq scan of the partitions up to as_of
    SELECT op.phase_id, count(*) AS executions, count(DISTINCT op.order_id) AS orders
    FROM orders_orderphase op
    WHERE op.is_done AND op.ended_at <= %(as_of)s AND op.phase_id IS NOT NULL
    GROUP BY 1
),
fnd AS (
    SELECT found_phase_id AS phase_id, count(*) AS n,
           count(*) FILTER (WHERE severity = 1) AS s1, count(*) FILTER (WHERE severity = 2) AS s2,
           count(*) FILTER (WHERE severity = 3) AS s3
    FROM err WHERE found_phase_id IS NOT NULL GROUP BY 1
),
cul AS (
    SELECT op.phase_id, count(*) AS n,
           count(*) FILTER (WHERE err.severity = 1) AS s1, count(*) FILTER (WHERE err.severity = 2) AS s2,
           count(*) FILTER (WHERE err.severity = 3) AS s3
    FROM err JOIN orders_orderphase op ON op.id = err.culprit_order_phase_id
    WHERE op.phase_id IS NOT NULL GROUP BY 1
),
ids AS (SELECT phase_id FROM exe UNION SELECT phase_id FROM fnd UNION SELECT phase_id FROM cul)
SELECT ids.phase_id, ph.name, ph.sequence,
       COALESCE(exe.executions, 0), COALESCE(exe.orders, 0),
       COALESCE(fnd.n, 0), COALESCE(fnd.s1, 0), COALESCE(fnd.s2, 0), COALESCE(fnd.s3, 0),
       COALESCE(cul.n, 0), COALESCE(cul.s1, 0), COALESCE(cul.s2, 0), COALESCE(cul.s3, 0),
       (SELECT count(*) FROM err) AS total
FROM ids
LEFT JOIN orders_phase ph ON ph.id = ids.phase_id
LEFT JOIN exe ON exe.phase_id = ids.phase_id
LEFT JOIN fnd ON fnd.phase_id = ids.phase_id
LEFT JOIN cul ON cul.phase_id = ids.phase_id
ORDER BY ph.sequence NULLS LAST, ids.phase_id
"""


@versioned_cache("quality.by_phase", warm=True)
def quality_by_phase(*, as_of: datetime) -> dict:
    """Per catalogue phase: errors found there and errors caused there, per execution, with severity split."""
    rows = _fetch_all(BY_PHASE_SQL, {"as_of": as_of})
    total = rows[0][13] if rows else 0
    phases = []
    found_total = culprit_total = 0
    for (phase_id, name, sequence, executions, orders, fn, f1, f2, f3, cn, c1, c2, c3, _t) in rows:
        found_total += fn
        culprit_total += cn
        phases.append({
            "phase_id": phase_id, "name": name, "sequence": sequence, "known_phase": name is not None,
            "executions": executions, "orders_executed": orders,
            "found": {"count": fn, "rate_per_execution": _round(ratio(fn, executions), 6),
                      "by_severity": _severity_split({1: f1, 2: f2, 3: f3}, fn)},
            "caused": {"count": cn, "rate_per_execution": _round(ratio(cn, executions), 6),
                       "by_severity": _severity_split({1: c1, 2: c2, 3: c3}, cn)},
        })
    return {
        "as_of": as_of.isoformat(),
        "rule": "executions = order phases ended up to as_of; found = errors whose Erro_FaseAvaliacao is the phase; "
                "caused = errors whose culprit order phase is of the phase; rate = count / executions",
        "phases": figure(phases, basis=OBSERVED, coverage=ratio(found_total, total) if total else None,
                         total_errors=total, errors_with_culprit_phase=culprit_total,
                         culprit_coverage=_round(ratio(culprit_total, total))),
    }


# --------------------------------------------------------------------------------------------- by product

BY_PRODUCT_SQL = f"""
WITH {ERR_CTE},
ord AS (
    SELECT mo.id, mo.product_id, (mo.finished_at IS NOT NULL AND mo.finished_at <= %(as_of)s) AS finished
    FROM orders_manufacturingorder mo
    WHERE (mo.created_at IS NULL OR mo.created_at <= %(as_of)s)
      AND (%(since)s::timestamptz IS NULL OR mo.created_at >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR mo.created_at < %(until)s::timestamptz)
),
per_order AS (
    SELECT order_id, count(*) AS n, count(*) FILTER (WHERE severity = 1) AS s1,
           count(*) FILTER (WHERE severity = 2) AS s2, count(*) FILTER (WHERE severity = 3) AS s3
    FROM err GROUP BY 1
)
SELECT ord.product_id, p.name, p.family, p.id IS NOT NULL AS known,
       count(*) AS orders,
       count(*) FILTER (WHERE ord.finished) AS finished,
       count(*) FILTER (WHERE ord.finished AND po.order_id IS NULL) AS finished_clean,
       count(po.order_id) AS orders_with_errors,
       COALESCE(sum(po.n), 0), COALESCE(sum(po.s1), 0), COALESCE(sum(po.s2), 0), COALESCE(sum(po.s3), 0),
       (SELECT count(*) FROM err WHERE NOT EXISTS (SELECT 1 FROM ord WHERE ord.id = err.order_id)) AS orphan_errors
FROM ord
LEFT JOIN per_order po ON po.order_id = ord.id
LEFT JOIN orders_product p ON p.id = ord.product_id
GROUP BY 1, 2, 3, 4
ORDER BY count(*) DESC, 1
"""


def _rates(orders: int, finished: int, clean: int, with_errors: int, errors: int, sev: dict) -> dict:
    return {
        "orders": orders, "orders_finished": finished, "orders_with_errors": with_errors, "errors": errors,
        "errors_per_order": _round(ratio(errors, orders), 6),
        "share_of_orders_with_errors": _round(ratio(with_errors, orders), 6),
        "by_severity": _severity_split(sev, errors),
        "first_pass_yield": figure(
            _round(ratio(clean, finished), 6), basis=OBSERVED, coverage=1.0 if finished else None,
            finished_without_error=clean, orders_finished=finished,
        ),
    }


@versioned_cache("quality.by_product", warm=True)
def quality_by_product(*, as_of: datetime, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Per product and per family: errors per order, severity split and first-pass yield; with a period
    [since, until) over the orders created in it (a cohort) and all their errors known at as_of."""
    rows = _fetch_all(BY_PRODUCT_SQL, {"as_of": as_of, "since": since, "until": until})
    products, families = [], {}
    factory = [0, 0, 0, 0, 0, {1: 0, 2: 0, 3: 0}]
    known_orders = 0
    orphan_errors = rows[0][12] if rows else 0
    for (product_id, name, family, known, orders, finished, clean, with_err, n, s1, s2, s3, _o) in rows:
        family = family if known else "UNKNOWN"
        sev = {1: s1, 2: s2, 3: s3}
        products.append({"product_id": product_id, "name": name, "family": family, "known_product": known,
                         **_rates(orders, finished, clean, with_err, n, sev)})
        known_orders += orders if known else 0
        for acc in (families.setdefault(family, [0, 0, 0, 0, 0, {1: 0, 2: 0, 3: 0}]), factory):
            for i, v in enumerate((orders, finished, clean, with_err, n)):
                acc[i] += v
            for s in SEVERITIES:
                acc[5][s] += sev[s]
    total_orders = factory[0]
    return {
        "as_of": as_of.isoformat(),
        "rule": "errors per order = errors on the product's orders / orders created up to as_of; "
                "first-pass yield = finished orders with no error / orders finished up to as_of",
        "products": figure(products, basis=OBSERVED, coverage=ratio(known_orders, total_orders),
                           note="coverage = share of orders whose product is in the catalogue (others: UNKNOWN)"),
        "families": figure(
            [{"family": f, **_rates(*acc)} for f, acc in sorted(families.items())],
            basis=OBSERVED, coverage=ratio(known_orders, total_orders),
        ),
        "factory": figure(_rates(*factory), basis=OBSERVED, coverage=1.0 if total_orders else None),
        "errors_on_unknown_orders": orphan_errors,
    }


# --------------------------------------------------------------------------------------------- heatmap

HEATMAP_SQL = f"""
WITH {ERR_PERIOD_CTE},
cells AS (
    SELECT err.found_phase_id, op.phase_id AS culprit_phase_id, count(*) AS n
    FROM err JOIN orders_orderphase op ON op.id = err.culprit_order_phase_id
    GROUP BY 1, 2
)
SELECT json_build_object(
    'total', (SELECT count(*) FROM err),
    'culprit_filled', (SELECT count(*) FROM err WHERE culprit_order_phase_id IS NOT NULL),
    'cells', (SELECT json_agg(json_build_object('found_phase_id', found_phase_id,
                                                'culprit_phase_id', culprit_phase_id, 'count', n)
                              ORDER BY found_phase_id, culprit_phase_id) FROM cells),
    'phases', (SELECT json_agg(json_build_object('phase_id', ph.id, 'name', ph.name, 'sequence', ph.sequence)
                               ORDER BY ph.sequence NULLS LAST, ph.id)
               FROM orders_phase ph
               WHERE ph.id IN (SELECT found_phase_id FROM cells UNION SELECT culprit_phase_id FROM cells))
)
"""


@versioned_cache("quality.heatmap", warm=True)
def quality_heatmap(*, as_of: datetime, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Matrix phase where found x culprit phase (counts), over the errors that have a culprit (dated in
    [since, until) when a period is given)."""
    raw = _fetch_json(HEATMAP_SQL, {"as_of": as_of, "since": since, "until": until})
    cells = raw["cells"] or []
    in_matrix = sum(c["count"] for c in cells)
    if raw["total"] and not raw["culprit_filled"]:
        return not_supported(feature="quality_heatmap", reason="no error has a culprit order phase (Erro_FaseOfCulpada)",
                             measured=0.0, threshold=None)
    return {
        "as_of": as_of.isoformat(),
        "rule": "rows: errors whose culprit order phase is filled and found; found = Erro_FaseAvaliacao, "
                "culprit = catalogue phase of Erro_FaseOfCulpada",
        "matrix": figure(cells, basis=OBSERVED, coverage=ratio(in_matrix, raw["total"]),
                         errors=raw["total"], errors_in_matrix=in_matrix, culprit_filled=raw["culprit_filled"]),
        "phases": raw["phases"] or [],
    }


# --------------------------------------------------------------------------------------------- escapes

ESCAPES_SQL = f"""
WITH {ERR_CTE},
esc AS MATERIALIZED (
    -- errors with a culprit: the culprit and found order phases (hash joins on the order-phase ids);
    -- route position key of an order phase = (sequence, start, id), nulls last
    SELECT err.id, err.severity, c.order_id AS c_order, c.phase_id AS culprit_phase_id,
           f.order_id = c.order_id AS same_order,
           COALESCE(c.sequence, 2147483647) AS c_seq, COALESCE(c.started_at, 'infinity') AS c_start, c.id AS c_id,
           COALESCE(f.sequence, 2147483647) AS f_seq, COALESCE(f.started_at, 'infinity') AS f_start, f.id AS f_id,
           EXTRACT(EPOCH FROM (COALESCE(f.ended_at, f.started_at) - COALESCE(c.ended_at, c.started_at))) / 3600.0
               AS hours_between
    FROM err
    JOIN orders_orderphase c ON c.id = err.culprit_order_phase_id
    LEFT JOIN orders_orderphase f ON f.id = err.found_order_phase_id
),
steps AS (
    -- order phases run after the culprit up to and including the found one (orders_op_order_seq_idx)
    SELECT esc.id,
           count(*) FILTER (WHERE (COALESCE(x.sequence, 2147483647), COALESCE(x.started_at, 'infinity'), x.id)
                                  > (esc.c_seq, esc.c_start, esc.c_id)
                              AND (COALESCE(x.sequence, 2147483647), COALESCE(x.started_at, 'infinity'), x.id)
                                  <= (esc.f_seq, esc.f_start, esc.f_id)) AS n
    FROM esc JOIN orders_orderphase x ON x.order_id = esc.c_order
    WHERE esc.same_order
    GROUP BY esc.id
),
measured AS (
    SELECT esc.id, esc.severity, esc.culprit_phase_id, esc.hours_between, p.finished_weight_kg AS weight_kg,
           CASE WHEN (esc.f_seq, esc.f_start, esc.f_id) < (esc.c_seq, esc.c_start, esc.c_id) THEN -1
                ELSE steps.n END AS phases_between
    FROM esc
    JOIN steps ON steps.id = esc.id
    LEFT JOIN orders_manufacturingorder mo ON mo.id = esc.c_order
    LEFT JOIN orders_product p ON p.id = mo.product_id
),
ok AS (SELECT * FROM measured WHERE phases_between >= 0)
SELECT json_build_object(
    'total', (SELECT count(*) FROM err),
    'culprit_filled', (SELECT count(*) FROM err WHERE culprit_order_phase_id IS NOT NULL),
    'with_culprit', (SELECT count(*) FROM esc),
    'measured', (SELECT count(*) FROM ok),
    'inconsistent', (SELECT count(*) FROM measured WHERE phases_between < 0),
    'groups', (
        SELECT json_agg(json_build_object(
            'culprit_phase_id', culprit_phase_id, 'name', name, 'severity', severity, 'count', n,
            'escaped', escaped, 'phases_sum', phases_sum, 'phases_avg', phases_avg, 'phases_median', phases_median,
            'hours_n', hours_n, 'hours_avg', hours_avg, 'hours_median', hours_median,
            'weight_n', weight_n, 'mass_kg', mass_kg, 'mass_phase_kg', mass_phase_kg)
            ORDER BY phases_sum DESC, culprit_phase_id, severity NULLS FIRST)
        FROM (
            SELECT ok.culprit_phase_id, ph.name, ok.severity, count(*) AS n,
                   count(*) FILTER (WHERE phases_between > 0) AS escaped,
                   sum(phases_between) AS phases_sum, avg(phases_between) AS phases_avg,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY phases_between) AS phases_median,
                   count(hours_between) AS hours_n, avg(hours_between) AS hours_avg,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_between) AS hours_median,
                   count(weight_kg) AS weight_n,
                   sum(weight_kg) FILTER (WHERE phases_between > 0) AS mass_kg,
                   sum(weight_kg * phases_between) AS mass_phase_kg
            FROM ok LEFT JOIN orders_phase ph ON ph.id = ok.culprit_phase_id
            GROUP BY GROUPING SETS ((ok.culprit_phase_id, ph.name, ok.severity), (ok.culprit_phase_id, ph.name))
        ) g)
)
"""


@versioned_cache("quality.escapes", warm=True)
def quality_escapes(*, as_of: datetime) -> dict:
    """Defect escape per culprit phase and severity: phases and hours from culprit to detection, mass carried."""
    raw = _fetch_json(ESCAPES_SQL, {"as_of": as_of})
    if raw["total"] and not raw["culprit_filled"]:
        return not_supported(feature="quality_escapes", reason="no error has a culprit order phase (Erro_FaseOfCulpada)",
                             measured=0.0, threshold=None)
    by_phase, detail = [], []
    for g in raw["groups"] or []:
        row = {
            "culprit_phase_id": g["culprit_phase_id"], "name": g["name"], "errors": g["count"],
            "escaped_errors": g["escaped"],
            "phases_between": {"sum": g["phases_sum"], "avg": _round(g["phases_avg"], 3),
                               "median": _round(g["phases_median"], 3)},
            "hours_between": figure({"avg": _round(g["hours_avg"], 2), "median": _round(g["hours_median"], 2)},
                                    basis=OBSERVED, coverage=ratio(g["hours_n"], g["count"]), n=g["hours_n"]),
            "mass": figure({"defective_kg": _round(g["mass_kg"], 3), "kg_phases": _round(g["mass_phase_kg"], 3)},
                           basis=THEORETICAL, coverage=ratio(g["weight_n"], g["count"]), n=g["weight_n"]),
        }
        if g["severity"] is None:
            by_phase.append(row)
        else:
            detail.append({**row, "severity": g["severity"]})
    return {
        "as_of": as_of.isoformat(),
        "rule": (
            "for each error with a culprit: phases_between = steps of the order's executed route (order phases "
            "ranked by sequence, start, id) after the culprit phase up to and including the phase where found "
            "(0: caught where caused); hours_between = (end, else start) of the found phase - of the culprit phase; "
            "mass = product finished weight (Produto_PesoAcabamento): defective_kg sums it over errors that "
            "escaped >= 1 phase, kg_phases sums weight x phases_between. Sorted by phases_sum: the culprit phases "
            "where an extra inspection would catch most defect-steps earliest come first."
        ),
        "coverage": {
            "errors": raw["total"], "with_culprit": raw["with_culprit"], "measured": raw["measured"],
            "inconsistent_found_before_culprit": raw["inconsistent"],
            "share_measured": _round(ratio(raw["measured"], raw["total"])),
        },
        "by_culprit_phase": figure(by_phase, basis=OBSERVED, coverage=ratio(raw["measured"], raw["total"])),
        "by_culprit_phase_and_severity": figure(detail, basis=OBSERVED,
                                                coverage=ratio(raw["measured"], raw["total"])),
    }


# --------------------------------------------------------------------------------------------- risk

RISK_SQL = """
WITH exe AS (
    -- units: (order, phase) pairs where the order finished the phase up to as_of
    SELECT DISTINCT op.order_id FROM orders_orderphase op
    WHERE op.phase_id = %(phase)s AND op.is_done AND op.ended_at <= %(as_of)s
),
hit AS (
    SELECT DISTINCT e.order_id FROM quality_qualityerror e
    LEFT JOIN orders_orderphase c ON %(culprit)s AND c.id = e.culprit_order_phase_id
    WHERE e.severity >= %(severity)s AND (e.event_time IS NULL OR e.event_time <= %(as_of)s)
      AND CASE WHEN %(culprit)s THEN c.phase_id = %(phase)s ELSE e.found_phase_id = %(phase)s END
),
units AS (
    SELECT exe.order_id, mo.product_id, p.family, (hit.order_id IS NOT NULL) AS hit
    FROM exe
    LEFT JOIN orders_manufacturingorder mo ON mo.id = exe.order_id
    LEFT JOIN orders_product p ON p.id = mo.product_id
    LEFT JOIN hit ON hit.order_id = exe.order_id
)
SELECT (SELECT family FROM orders_product WHERE id = %(product)s) AS product_family,
       (SELECT name FROM orders_phase WHERE id = %(phase)s) AS phase_name,
       count(*) FILTER (WHERE product_id = %(product)s), count(*) FILTER (WHERE product_id = %(product)s AND hit),
       count(*) FILTER (WHERE family = COALESCE(%(family)s, (SELECT family FROM orders_product WHERE id = %(product)s))),
       count(*) FILTER (WHERE hit AND family = COALESCE(%(family)s,
                                                      (SELECT family FROM orders_product WHERE id = %(product)s))),
       count(*), count(*) FILTER (WHERE hit)
FROM units
"""


def wilson_interval(k: int, n: int, z: float = WILSON_Z95) -> tuple[float, float] | None:
    """Wilson score interval for k successes out of n (None when n = 0)."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@versioned_cache("quality.risk")
def quality_risk(*, as_of: datetime, phase_id: int, severity: int = 1, product_id: int | None = None,
                 family: str | None = None, attribution: str = "found", min_sample: int = DEFAULT_MIN_SAMPLE) -> dict:
    """Baseline probability that an order running `phase_id` gets an error of severity >= s attributed to it.

    Falls back product -> family -> factory when the product is unknown or its sample is under min_sample."""
    row = _fetch_all(RISK_SQL, {
        "as_of": as_of, "phase": phase_id, "severity": severity, "product": product_id, "family": family,
        "culprit": attribution == "culprit",
    })[0]
    product_family, phase_name, pn, pk, fn, fk, an, ak = row
    family_used = family or product_family
    levels = []
    if product_id is not None:
        levels.append({"level": "product", "key": product_id, "n": pn, "k": pk,
                       "known": product_family is not None})
    if family_used is not None:
        levels.append({"level": "family", "key": family_used, "n": fn, "k": fk, "known": True})
    levels.append({"level": "factory", "key": None, "n": an, "k": ak, "known": True})
    chosen, reasons = None, []
    for level in levels:
        if not level["known"]:
            reasons.append(f"product {product_id} is not in the catalogue")
            continue
        if level["n"] >= min_sample or level["level"] == "factory":
            chosen = level
            break
        reasons.append(f"{level['level']} sample {level['n']} < min_sample {min_sample}")
    n, k = chosen["n"], chosen["k"]
    interval = wilson_interval(k, n)
    return {
        "as_of": as_of.isoformat(),
        "phase": {"phase_id": phase_id, "name": phase_name, "known_phase": phase_name is not None},
        "severity_at_least": severity,
        "attribution": attribution,
        "level": chosen["level"],
        "level_key": chosen["key"],
        "fallback_reasons": reasons,
        "levels_tried": [{k_: v for k_, v in lv.items() if k_ != "known"} | {"known": lv["known"]} for lv in levels],
        "probability": figure(
            _round(ratio(k, n), 6), basis=OBSERVED, coverage=1.0 if n else None, sample_size=n, events=k,
            wilson_95=None if interval is None else [_round(interval[0], 6), _round(interval[1], 6)],
        ),
        "rule": (
            "unit = an order that ended the phase up to as_of; event = that order has an error of severity >= s "
            + ("whose culprit order phase is of this phase" if attribution == "culprit"
               else "found at this phase (Erro_FaseAvaliacao)")
            + f"; levels product -> family -> factory, a level answers when its sample >= {min_sample}"
        ),
    }


RISK_TABLE_SQL = """
WITH exe AS (
    -- units: (order, phase) pairs where the order finished the phase up to as_of
    SELECT DISTINCT op.order_id, op.phase_id FROM orders_orderphase op
    WHERE op.is_done AND op.ended_at <= %(as_of)s AND op.phase_id IS NOT NULL
),
hit AS (
    SELECT DISTINCT e.order_id, CASE WHEN %(culprit)s THEN c.phase_id ELSE e.found_phase_id END AS phase_id
    FROM quality_qualityerror e
    LEFT JOIN orders_orderphase c ON %(culprit)s AND c.id = e.culprit_order_phase_id
    WHERE e.severity >= %(severity)s AND (e.event_time IS NULL OR e.event_time <= %(as_of)s)
),
units AS (
    SELECT exe.phase_id, p.family, (hit.order_id IS NOT NULL) AS hit
    FROM exe
    LEFT JOIN orders_manufacturingorder mo ON mo.id = exe.order_id
    LEFT JOIN orders_product p ON p.id = mo.product_id
    LEFT JOIN hit ON hit.order_id = exe.order_id AND hit.phase_id = exe.phase_id
    WHERE (%(product)s::bigint IS NULL OR mo.product_id = %(product)s::bigint)
      AND (%(family)s::text IS NULL OR p.family = %(family)s::text)
)
SELECT u.family, u.phase_id, ph.name, count(*), count(*) FILTER (WHERE u.hit)
FROM units u LEFT JOIN orders_phase ph ON ph.id = u.phase_id
GROUP BY u.family, u.phase_id, ph.name
ORDER BY u.family NULLS LAST, u.phase_id
"""


def _risk_cell(k: int, n: int) -> dict:
    interval = wilson_interval(k, n)
    return figure(_round(ratio(k, n), 6), basis=OBSERVED, coverage=1.0 if n else None, sample_size=n, events=k,
                  wilson_95=None if interval is None else [_round(interval[0], 6), _round(interval[1], 6)])


@versioned_cache("quality.risk_table")
def quality_risk_table(*, as_of: datetime, severity: int = 1, product_id: int | None = None, family: str | None = None,
                       attribution: str = "found", min_sample: int = DEFAULT_MIN_SAMPLE) -> dict:
    """The baseline risk of every (product family, phase) pair: the share of orders that finished the phase up to
    as_of with an error of severity >= s attributed to it, with its Wilson 95% interval.

    One statement; `family` or `product` narrow the units to that family's or product's orders. Orders whose
    product is unknown (orphans) form the family-null rows."""
    rows = _fetch_all(RISK_TABLE_SQL, {"as_of": as_of, "severity": severity, "product": product_id, "family": family,
                                       "culprit": attribution == "culprit"})
    return {
        "as_of": as_of.isoformat(),
        "severity_at_least": severity,
        "attribution": attribution,
        "product": product_id,
        "family": family,
        "min_sample": min_sample,
        "rows": [
            {"family": fam, "phase": {"phase_id": phase_id, "name": name, "known_phase": name is not None},
             "enough_sample": n >= min_sample, "probability": _risk_cell(k, n)}
            for fam, phase_id, name, n, k in rows
        ],
        "rule": (
            "per (product family, phase): unit = an order of the family that ended the phase up to as_of; event = "
            "that order has an error of severity >= s "
            + ("whose culprit order phase is of this phase" if attribution == "culprit"
               else "found at this phase (Erro_FaseAvaliacao)")
            + f"; family null = orders of an unknown product; enough_sample = sample >= {min_sample}; "
            "give phase for one answer with the product -> family -> factory fallback"
        ),
    }


def order_errors(*, order_id: int) -> list[dict]:
    """The quality errors of one order, most severe first, with the name of the phase where each was found."""
    names = phase_names()
    rows = list(QualityError.objects.filter(order_id=order_id).order_by("-severity", "event_time").values(
        "description", "severity", "found_phase_id", "found_order_phase_id", "culprit_order_phase_id", "event_time"))
    for row in rows:
        row["found_phase_name"] = names.get(row["found_phase_id"])
    return rows


# --------------------------------------------------------------------------------------------- error list

# The errors in scope at as_of, filtered as the heatmap attributes them (found = Erro_FaseAvaliacao, culprit = the
# catalogue phase of Erro_FaseOfCulpada) and by period on event_time; one page, newest first, and the count.
ERRORS_SQL = f"""
WITH {ERR_CTE},
phased AS MATERIALIZED (
    SELECT err.id, err.order_id, err.severity, err.description, err.event_time, err.found_phase_id,
           err.culprit_order_phase_id, op.phase_id AS culprit_phase_id
    FROM err LEFT JOIN orders_orderphase op ON op.id = err.culprit_order_phase_id
    LEFT JOIN orders_manufacturingorder mo ON mo.id = err.order_id
    LEFT JOIN orders_product pr ON pr.id = mo.product_id
    WHERE (%(found)s::bigint IS NULL OR err.found_phase_id = %(found)s::bigint)
      AND (%(culprit)s::bigint IS NULL OR op.phase_id = %(culprit)s::bigint)
      AND (%(product)s::bigint IS NULL OR mo.product_id = %(product)s::bigint)
      -- family as quality_by_product groups it: an order whose product is not in the catalogue is UNKNOWN
      AND (%(family)s::text IS NULL OR (mo.id IS NOT NULL AND COALESCE(pr.family, 'UNKNOWN') = %(family)s::text))
),
filtered AS (
    SELECT * FROM phased
    WHERE (%(since)s::timestamptz IS NULL OR event_time >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR event_time < %(until)s::timestamptz)
)
SELECT json_build_object(
    'count', (SELECT count(*) FROM filtered),
    'phased', (SELECT count(*) FROM phased),
    'undated', (SELECT count(*) FROM phased WHERE event_time IS NULL),
    'rows', (SELECT json_agg(p) FROM (SELECT * FROM filtered ORDER BY event_time DESC NULLS LAST, id DESC
                                       LIMIT %(limit)s OFFSET %(offset)s) p)
)
"""


def quality_errors(*, as_of: datetime, found_phase_id: int | None = None, culprit_phase_id: int | None = None,
                   since: datetime | None = None, until: datetime | None = None, product_id: int | None = None,
                   family: str | None = None, offset: int = 0, limit: int = 50) -> dict:
    """One page of the errors in scope at as_of (ERR_CTE), filtered by the phase where found, the culprit's phase
    (as quality_heatmap counts them: a cell's filter gives its count) and the period [since, until) on event_time
    (undated errors only without a period), the order's product and its family (as quality_by_product groups them);
    newest first, with the phase names and the count (one query)."""
    raw = _fetch_json(ERRORS_SQL, {"as_of": as_of, "found": found_phase_id, "culprit": culprit_phase_id,
                                   "product": product_id, "family": family,
                                   "since": since, "until": until, "limit": limit, "offset": offset})
    names = phase_names()
    rows = raw["rows"] or []
    for row in rows:
        row["event_time"] = parse_datetime(row["event_time"]) if row["event_time"] else None
        row["found_phase_name"] = names.get(row["found_phase_id"])
        row["culprit_phase_name"] = names.get(row["culprit_phase_id"])
    period = since is not None or until is not None
    # With a period, undated errors cannot be placed in it: the coverage is the dated share of the phase filter.
    coverage = _round(1 - ratio(raw["undated"], raw["phased"])) if period and raw["phased"] else 1.0
    return {"count": raw["count"], "rows": rows, "offset": offset, "limit": limit, "basis": OBSERVED,
            "coverage": coverage, "undated_left_out": raw["undated"] if period else 0,
            "rule": "errors whose derived time is at or before as_of (undated ones always); found = Erro_FaseAvaliacao, "
                    "culprit = catalogue phase of Erro_FaseOfCulpada; period on the derived time"}
