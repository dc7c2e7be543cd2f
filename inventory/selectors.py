"""SmartInventory reads: WIP by phase and product, theoretical WIP mass and gelcoat use, unsupported features.

The WIP is the orders app's: the active orders at as_of (orders.selectors.active_orders_at, the one order
state; stalled and abandoned orders are not WIP), each at its state's phase. What inventory adds to them
(catalogue data, the demoulding flag) is one SQL statement keyed by their ids.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

from ingestion.contract import SHEETS
from inventory.phases import catalogue_phases, match_phases, normalise_name
from orders.choices import OrderState, PlacementBasis
from orders.selectors import ORDER_STATE_RULE, active_orders_at, open_orders_at
from prodplan.cache import versioned_cache
from prodplan.gates import OBSERVED, THEORETICAL, figure, not_supported, ratio

ORPHAN_LIST_LIMIT = 200


def _fetch_all(sql: str, params: dict) -> list[tuple]:
    """One analytic statement with JIT off (row estimates over CTEs overshoot; JIT compile time is wasted)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return cursor.fetchall()


WIP_RULE = (
    "WIP at as_of = the active orders of the order state (orders.selectors.ORDER_STATE_RULE): open, neither "
    "stalled nor abandoned (those are counted apart: stalled_orders_excluded, abandoned_orders_excluded); each "
    "order is at its state's phase: in_progress, waiting before it, or not_started (its first phase ahead); "
    "phase_id null = no phase could be placed (see order_state_rule)"
)

# Catalogue data of the WIP orders (ids and state phases as parallel arrays): product, phase name and
# sequence, and whether the order ended a demoulding phase by as_of. Expected plan: the ids unnested, the
# orders by primary key, products and phases hashed, one orders_op_order_seq_idx probe per order for the flag
# (skipped when there are no demoulding phases).
WIP_CATALOGUE_SQL = """
SELECT w.order_id, mo.product_id, p.id IS NOT NULL AS known, p.name, p.family, ph.name, ph.sequence,
       cardinality(%(demould_ids)s::bigint[]) > 0 AND EXISTS (
           SELECT 1 FROM orders_orderphase op
           WHERE op.order_id = w.order_id AND op.phase_id = ANY(%(demould_ids)s::bigint[])
             AND op.ended_at <= %(as_of)s) AS demoulded,
       p.demould_weight_kg, p.finished_weight_kg
FROM unnest(%(ids)s::bigint[], %(phases)s::bigint[]) AS w(order_id, phase_id)
JOIN orders_manufacturingorder mo ON mo.id = w.order_id
LEFT JOIN orders_product p ON p.id = mo.product_id
LEFT JOIN orders_phase ph ON ph.id = w.phase_id
ORDER BY w.order_id
"""


def _excluded(as_of: datetime) -> dict:
    """Open orders at as_of left out of the WIP by the order state, and the placement bases of the WIP."""
    states = Counter(r["state"] for r in open_orders_at(as_of=as_of))  # both cached per as_of
    bases = Counter(r["placement_basis"] for r in active_orders_at(as_of=as_of))
    return {
        "stalled_orders_excluded": states.get(OrderState.STALLED, 0),
        "abandoned_orders_excluded": states.get(OrderState.ABANDONED, 0),
        "placement": {basis: bases.get(basis, 0) for basis in PlacementBasis.values if basis != PlacementBasis.NONE},
    }


def _wip_rows(as_of: datetime, demould_ids: list[int]) -> list[dict]:
    """The WIP orders at as_of (active_orders_at) with their state and catalogue data; one query for the latter."""
    states = {r["order_id"]: r for r in active_orders_at(as_of=as_of)}
    if not states:
        return []
    keys = ("order_id", "product_id", "known", "product_name", "family", "phase_name", "phase_sequence",
            "demoulded", "demould_weight_kg", "finished_weight_kg")
    ids = sorted(states)
    with connection.cursor() as cursor:
        cursor.execute(WIP_CATALOGUE_SQL, {"ids": ids, "phases": [states[i]["phase_id"] for i in ids],
                                           "demould_ids": [int(i) for i in demould_ids], "as_of": as_of})
        rows = [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]
    for r in rows:
        state = states[r["order_id"]]
        r.update(phase_id=state["phase_id"], state=state["state"], in_progress=state["state"] == OrderState.IN_PROGRESS)
    return rows


def _phase_key(row: dict) -> tuple:
    return (row["phase_sequence"] is None, row["phase_sequence"] or 0, row["phase_id"] is None, row["phase_id"] or 0)


@versioned_cache("inventory.wip", warm=True)
def wip(*, as_of: datetime) -> dict:
    """WIP order counts at as_of (the active orders of the order state), by phase and by product / family."""
    rows = _wip_rows(as_of, [])
    total = len(rows)
    known = sum(r["known"] for r in rows)
    phases: dict = {}
    for r in sorted(rows, key=_phase_key):
        entry = phases.setdefault(r["phase_id"], {"phase_id": r["phase_id"], "name": r["phase_name"], "orders": 0,
                                                  "in_progress": 0, "waiting": 0, "not_started": 0})
        entry["orders"] += 1
        entry[r["state"]] += 1
    products = Counter((r["product_id"], r["product_name"], r["family"] if r["known"] else "UNKNOWN", r["known"])
                       for r in rows)
    families = Counter(r["family"] if r["known"] else "UNKNOWN" for r in rows)
    excluded = _excluded(as_of)
    return {
        "as_of": as_of.isoformat(),
        "rule": WIP_RULE,
        "order_state_rule": ORDER_STATE_RULE,
        "total_orders": figure(total, basis=OBSERVED, coverage=1.0 if total else None,
                               stalled_orders_excluded=excluded["stalled_orders_excluded"],
                               abandoned_orders_excluded=excluded["abandoned_orders_excluded"]),
        "by_phase": figure(list(phases.values()), basis=OBSERVED,
                           coverage=ratio(sum(1 for r in rows if r["phase_id"] is not None), total),
                           placement=excluded["placement"],
                           note="coverage = share of WIP orders placed at a phase (placement = their bases)"),
        "by_product": figure(
            [{"product_id": pid, "name": name, "family": fam, "known_product": kn, "orders": n}
             for (pid, name, fam, kn), n in sorted(products.items(), key=lambda kv: (-kv[1], kv[0][0] or 0))],
            basis=OBSERVED, coverage=ratio(known, total),
            note="coverage = share of WIP orders whose product is in the catalogue",
        ),
        "by_family": figure([{"family": f, "orders": n} for f, n in sorted(families.items())],
                            basis=OBSERVED, coverage=ratio(known, total)),
        **excluded,
    }


def _phase_gate(kind: str, feature: str):
    """Match `kind` phases by name; a NOT_SUPPORTED payload when the catalogue has none."""
    catalogue = catalogue_phases()
    match = match_phases(catalogue, kind)
    if not match.phases:
        return match, not_supported(
            feature=feature,
            reason=f"no catalogue phase (Fases.Fase_Nome) is named like a {kind} phase; "
                   f"{match.rule()['rule']}; {len(catalogue)} phases checked",
            measured=0.0, threshold=None, missing_data=f"a {kind} phase in the Fases sheet", phase_rule=match.rule(),
        )
    return match, None


@versioned_cache("inventory.wip_mass", warm=True)
def wip_mass(*, as_of: datetime) -> dict:
    """Theoretical mass in process: demould weight before the demoulding phase, finished weight after."""
    match, gate = _phase_gate("demoulding", "wip_mass")
    if gate:
        return gate
    rows = _wip_rows(as_of, match.ids)
    total = len(rows)
    orphans = [r for r in rows if not r["known"]]
    known = [r for r in rows if r["known"]]
    by_phase: dict = {}
    by_family: dict = defaultdict(lambda: {"orders": 0, "weighed": 0, "mass_kg": 0.0})
    weighed = 0
    mass = 0.0
    before = after = 0
    for r in sorted(known, key=_phase_key):
        weight = r["finished_weight_kg"] if r["demoulded"] else r["demould_weight_kg"]
        if r["demoulded"]:
            after += 1
        else:
            before += 1
        entry = by_phase.setdefault(r["phase_id"], {"phase_id": r["phase_id"], "name": r["phase_name"],
                                                    "orders": 0, "weighed": 0, "mass_kg": 0.0})
        fam = by_family[r["family"]]
        for acc in (entry, fam):
            acc["orders"] += 1
            if weight is not None:
                acc["weighed"] += 1
                acc["mass_kg"] += weight
        if weight is not None:
            weighed += 1
            mass += weight
    orphan_products = Counter(r["product_id"] for r in orphans)
    excluded = _excluded(as_of)
    for acc in (*by_phase.values(), *by_family.values()):
        acc["mass_kg"] = round(acc["mass_kg"], 3)
    return {
        "as_of": as_of.isoformat(),
        "rule": (
            "each WIP order of a known product counts its product's demoulding weight (Produto_PesoDesmolde) until "
            "it has ended a demoulding phase at or before as_of, and its finished weight (Produto_PesoAcabamento) "
            "after; a missing weight counts nothing (see weighed). " + WIP_RULE
        ),
        "order_state_rule": ORDER_STATE_RULE,
        "demoulding_phases": match.rule(),
        "total_mass_kg": figure(
            round(mass, 3), basis=THEORETICAL, coverage=ratio(len(known), total),
            wip_orders=total, known_product_orders=len(known), weighed_orders=weighed,
            weight_coverage=None if not total else round(weighed / total, 4),
            orders_before_demoulding=before, orders_after_demoulding=after,
            stalled_orders_excluded=excluded["stalled_orders_excluded"],
            abandoned_orders_excluded=excluded["abandoned_orders_excluded"],
            note="coverage = share of WIP orders whose product is in the catalogue",
        ),
        "by_phase": figure(list(by_phase.values()), basis=THEORETICAL, coverage=ratio(len(known), total)),
        "by_family": figure([{"family": f, **v} for f, v in sorted(by_family.items())],
                            basis=THEORETICAL, coverage=ratio(len(known), total)),
        "orphans": {
            "orders": len(orphans),
            "share": None if not total else round(len(orphans) / total, 4),
            "products": [{"product_id": pid, "orders": n}
                         for pid, n in sorted(orphan_products.items(), key=lambda kv: (-kv[1], kv[0] or 0))],
            "order_ids": [r["order_id"] for r in orphans[:ORPHAN_LIST_LIMIT]],
            "order_ids_truncated": len(orphans) > ORPHAN_LIST_LIMIT,
            "note": "WIP orders whose product id is not in the catalogue (Modelos): no weight, not in the mass",
        },
    }


GELCOAT_SQL = """
WITH first_pass AS (
    -- each order once, at its first gelcoat phase ended up to as_of (orders_op_phase_event_idx)
    SELECT op.order_id, min(op.ended_at) AS passed_at
    FROM orders_orderphase op
    WHERE op.phase_id = ANY(%(ids)s) AND op.ended_at IS NOT NULL AND op.ended_at <= %(as_of)s
    GROUP BY 1
)
SELECT to_char(date_trunc(%(period)s, fp.passed_at AT TIME ZONE %(tz)s), 'YYYY-MM-DD') AS bucket,
       count(*) AS orders,
       count(p.id) AS known_product,
       count(*) FILTER (WHERE p.gelcoat_deck_qty IS NOT NULL AND p.gelcoat_hull_qty IS NOT NULL) AS with_qty,
       COALESCE(sum(p.gelcoat_deck_qty) FILTER (WHERE p.gelcoat_hull_qty IS NOT NULL), 0) AS deck,
       COALESCE(sum(p.gelcoat_hull_qty) FILTER (WHERE p.gelcoat_deck_qty IS NOT NULL), 0) AS hull
FROM first_pass fp
LEFT JOIN orders_manufacturingorder mo ON mo.id = fp.order_id
LEFT JOIN orders_product p ON p.id = mo.product_id
GROUP BY 1 ORDER BY 1
"""


@versioned_cache("inventory.gelcoat_theoretical_usage", warm=({"period": "month"}, {"period": "week"}))
def gelcoat_theoretical_usage(*, as_of: datetime, period: str = "month") -> dict:
    """Theoretical gelcoat use per week or month: orders passing gelcoat x the product's deck + hull standard."""
    match, gate = _phase_gate("gelcoat", "gelcoat_theoretical_usage")
    if gate:
        return gate
    rows = _fetch_all(GELCOAT_SQL, {"ids": match.ids, "as_of": as_of, "period": period, "tz": settings.TIME_ZONE})
    series = []
    orders = with_qty = 0
    total_qty = 0.0
    for bucket, n, known, n_qty, deck, hull in rows:
        orders += n
        with_qty += n_qty
        total_qty += deck + hull
        series.append({
            "period_start": bucket, "orders": n, "orders_known_product": known, "orders_with_quantities": n_qty,
            "deck_qty": round(deck, 4), "hull_qty": round(hull, 4), "theoretical_qty": round(deck + hull, 4),
            "coverage": None if not n else round(n_qty / n, 4),
        })
    return {
        "as_of": as_of.isoformat(),
        "period": period,
        "rule": (
            "each order counts once, in the period (Europe/Lisbon) of the first gelcoat order phase it ended up to "
            "as_of, with its product's standard quantities Produto_QtdGelDeck + Produto_QtdGelCasco (units as in "
            "Modelos); orders whose product is unknown or lacks either quantity count nothing (see coverage). "
            "A theoretical use from product standards: not a measured consumption."
        ),
        "gelcoat_phases": match.rule(),
        "total_theoretical_qty": figure(round(total_qty, 4), basis=THEORETICAL, coverage=ratio(with_qty, orders),
                                        orders=orders, orders_with_quantities=with_qty),
        "series": figure(series, basis=THEORETICAL, coverage=ratio(with_qty, orders)),
    }


# Features the workbook cannot back: what each would need.
UNSUPPORTED_FEATURES = {
    "real_stock": "stock on hand needs stock movements (receipts, issues, transfers) or stock counts per material "
                  "and location",
    "material_consumption": "real material consumption needs material issues per order or per phase",
    "stock_valuation": "stock value needs stock quantities and unit costs or prices",
    "replenishment": "reorder points need stock levels, supplier lead times and material demand per material",
}
MOVEMENT_MARKERS = ("stock", "movim", "armaz", "invent", "existenc", "material", "compra", "receb")


def unsupported_feature(*, feature: str) -> dict:
    """NOT_SUPPORTED_BY_DATA for an inventory feature, measured against the workbook contract's sheets."""
    looked = [(s.name, h) for s in SHEETS for h in [s.name, *s.headers]]
    matching = sorted({name for name, text in looked if any(m in normalise_name(text) for m in MOVEMENT_MARKERS)})
    return not_supported(
        feature=feature,
        reason=f"{UNSUPPORTED_FEATURES[feature]}; the workbook (Folha_IA.xlsx) has no such data: none of its "
               f"{len(SHEETS)} sheets holds stock movements, stock counts, material issues or costs",
        measured=float(len(matching)), threshold=1.0,
        missing_data=["stock movements (receipts, issues, transfers)", "stock counts per material and location",
                      "material master with units and costs"],
        sheets_checked=[s.name for s in SHEETS],
        sheets_with_stock_data=matching,
        alternative="/api/smartinventory/gelcoat_theoretical_usage (theoretical, from product standards)",
    )
