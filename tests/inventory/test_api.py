"""SmartInventory API on ORM-built rows: WIP, WIP mass, theoretical gelcoat use, unsupported features."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from inventory.phases import match_phases, normalise_name
from tests.quality.builders import AS_OF, UNKNOWN_PRODUCT, build_factory, load_rows

pytestmark = pytest.mark.django_db

LISBON = ZoneInfo("Europe/Lisbon")
Q = {"as_of": AS_OF.isoformat()}


JUNE = datetime(2025, 6, 1, tzinfo=UTC)


def add_recent_wip(as_of: datetime, first_id: int) -> None:
    """Twelve orders moving at as_of (the factory's own open orders mostly stopped long ago: stalled), at every
    phase of the route: k phases ended in the last days, then the next one in progress (k % 3 == 0) or ahead."""
    from datetime import timedelta

    from orders.models import ManufacturingOrder, OrderPhase
    from tests.quality.builders import PHASES

    hour = timedelta(hours=1)
    orders, phases = [], []
    for k in range(12):
        oid, stage = first_id + k, k % 7
        created = as_of - timedelta(days=1 + k % 3)
        t = created + hour
        for idx, (pid, _name, seq) in enumerate(PHASES):
            started = ended = None
            if idx < stage:
                started, ended = t, t + hour
                t += 2 * hour
            elif idx == stage and k % 3 == 0:
                started = t
            phases.append(OrderPhase(id=first_id * 10 + k * 10 + idx, order_id=oid, phase_id=pid, sequence=seq,
                                     started_at=started, ended_at=ended, event_time=ended or started or created,
                                     is_open=started is not None and ended is None, is_done=ended is not None,
                                     is_rework=False))
        orders.append(ManufacturingOrder(id=oid, created_at=created, finished_at=None, is_open=True,
                                         product_id=[1, 2, 3, 4, UNKNOWN_PRODUCT][k % 5],
                                         current_phase_id=PHASES[min(stage, len(PHASES) - 1)][0]))
    ManufacturingOrder.objects.bulk_create(orders)
    OrderPhase.objects.bulk_create(phases)


@pytest.fixture
def rows(db):
    build_factory()
    add_recent_wip(AS_OF, 3000)
    add_recent_wip(JUNE, 3100)  # open and idle since June at AS_OF: stalled then
    return load_rows()


def _wip_orders(rows, as_of=AS_OF):
    return [o for o in rows["orders"] if (o["created_at"] is None or o["created_at"] <= as_of)
            and (o["finished_at"] is None or o["finished_at"] > as_of)]


def test_phase_name_rule():
    assert normalise_name("Gel-Coat Deck") == "gelcoatdeck"
    assert normalise_name("DESMOLDAÇÃO") == "desmoldacao"
    catalogue = [(1, "Desmoldagem"), (2, "Demoulding"), (3, "Gel coat casco"), (4, "GELCOAT"), (5, "Moldagem"),
                 (6, "Laminação"), (7, "Aplicação Desmoldante"), (8, "Inspeção Visual Desmoldagem"),
                 (9, "Cura Gelcoat"), (10, "Reparação Gelcoat"), (11, "Desmoldagem Deck"), (12, "Gel-Coat Cor Especial")]
    demoulding = match_phases(catalogue, "demoulding")
    assert demoulding.ids == [1, 2, 11]
    assert [(p["phase_id"], p["because"]) for p in demoulding.excluded] == [(7, "desmoldante"), (8, "inspecao")]
    gelcoat = match_phases(catalogue, "gelcoat")
    assert gelcoat.ids == [3, 4, 12]
    assert [(p["phase_id"], p["because"]) for p in gelcoat.excluded] == [(9, "cura"), (10, "reparacao")]


def _active(as_of=AS_OF) -> dict[int, dict]:
    from orders.selectors import active_orders_at

    return {r["order_id"]: r for r in active_orders_at(as_of=as_of)}


def _in_progress_phase(rows, order_id, as_of=AS_OF):
    """Independently: the phase an order is in at as_of (started by then, not ended by then; latest start wins)."""
    running = [p for p in rows["order_phases"] if p["order_id"] == order_id and p["started_at"] is not None
               and p["started_at"] <= as_of and (p["ended_at"] is None or p["ended_at"] > as_of)]
    return max(running, key=lambda p: (p["started_at"], p["sequence"], p["id"]))["phase_id"] if running else None


@pytest.mark.parametrize("as_of", [AS_OF, JUNE])
def test_wip_is_the_order_state(api_client, rows, as_of, pinned_queries):
    from orders.choices import PlacementBasis
    from orders.selectors import open_orders_at

    # cold cache: data version, the order state's parameters (stall gaps, lead times and products, the data's
    # as-of), the order state itself, the catalogue of the WIP ids: 7
    with pinned_queries("inventory.test_api.test_wip_is_the_order_state"):  # cold: thresholds, export shape, states, catalogue
        body = api_client.get("/api/smartinventory/wip", {"as_of": as_of.isoformat()}).json()
    active = _active(as_of)
    states = Counter(r["state"] for r in open_orders_at(as_of=as_of))
    # the open orders are those created by as_of and not finished by then; stalled and abandoned ones are not WIP
    assert {r["order_id"] for r in open_orders_at(as_of=as_of)} == {o["id"] for o in _wip_orders(rows, as_of)}
    assert body["total_orders"]["value"] == len(active) > 5
    assert body["stalled_orders_excluded"] == body["total_orders"]["stalled_orders_excluded"] == states["stalled"] > 0
    assert body["total_orders"]["value"] + states["stalled"] + states["abandoned"] == len(_wip_orders(rows, as_of))
    assert "ORDER_STATE_RULE" in body["rule"] and body["order_state_rule"].startswith("At as_of")
    got = {p["phase_id"]: p for p in body["by_phase"]["value"]}
    assert {k: v["orders"] for k, v in got.items()} == dict(Counter(r["phase_id"] for r in active.values()))
    for key in ("in_progress", "waiting", "not_started"):
        assert {k: v[key] for k, v in got.items()} == {
            k: sum(1 for r in active.values() if r["phase_id"] == k and r["state"] == key) for k in got}
    # in progress: independently, the phase started and not ended at as_of
    in_progress = Counter(_in_progress_phase(rows, oid, as_of) for oid in active)
    in_progress.pop(None, None)
    assert {k: v["in_progress"] for k, v in got.items() if v["in_progress"]} == dict(in_progress)
    assert body["by_phase"]["placement"] == {
        b: sum(1 for r in active.values() if r["placement_basis"] == b) for b in PlacementBasis.values if b != "none"}
    assert sum(body["by_phase"]["placement"].values()) == len(active)
    wip = [o for o in rows["orders"] if o["id"] in active]
    products = Counter(o["product_id"] for o in wip)
    assert {p["product_id"]: p["orders"] for p in body["by_product"]["value"]} == dict(products)
    known = sum(o["product_id"] in rows["products"] for o in wip)
    assert body["by_product"]["coverage"] == round(known / len(wip), 4)
    families = Counter(rows["products"][o["product_id"]]["family"] if o["product_id"] in rows["products"]
                       else "UNKNOWN" for o in wip)
    assert {f["family"]: f["orders"] for f in body["by_family"]["value"]} == dict(families)


@pytest.mark.parametrize("as_of", [AS_OF, JUNE])
def test_wip_per_phase_equals_the_schedule(api_client, rows, as_of):
    """SmartInventory and /api/prodplan/schedule/current count the same WIP in every phase (e.g. Laminação)."""
    from orders.selectors import schedule_current

    inventory = api_client.get("/api/smartinventory/wip", {"as_of": as_of.isoformat()}).json()
    schedule = schedule_current(as_of=as_of)
    served = api_client.get("/api/prodplan/schedule/current", {"as_of": as_of.isoformat()}).json()
    assert {(p["phase"] or {}).get("id"): p["wip"] for p in served["phases"]} == {
        (p["phase"] or {}).get("id"): p["wip"] for p in schedule["phases"]}
    ours = {p["phase_id"]: (p["orders"], p["in_progress"], p["waiting"], p["not_started"])
            for p in inventory["by_phase"]["value"]}
    theirs = {(p["phase"] or {}).get("id"): (p["wip"], p["in_progress"], p["waiting"], p["not_started"])
              for p in schedule["phases"]}
    assert ours == theirs
    assert inventory["total_orders"]["value"] == schedule["active_orders"]
    assert inventory["stalled_orders_excluded"] == schedule["stalled"]["count"]
    lamination = next(p for p in inventory["by_phase"]["value"] if p["name"] == "Laminação")
    assert lamination["orders"] == theirs[30][0] > 0


def test_wip_mass_matches_rows(api_client, rows, pinned_queries):
    # cold cache: as for /wip (7) plus the catalogue phases matched by name: 8
    with pinned_queries("inventory.test_api.test_wip_mass_matches_rows"):
        body = api_client.get("/api/smartinventory/wip_mass", Q).json()
    active = _active()
    wip = [o for o in rows["orders"] if o["id"] in active]
    demoulded = {p["order_id"] for p in rows["order_phases"]
                 if p["phase_id"] == 40 and p["ended_at"] is not None and p["ended_at"] <= AS_OF}
    mass = 0.0
    weighed = 0
    by_family = defaultdict(float)
    by_phase = defaultdict(float)
    for o in wip:
        product = rows["products"].get(o["product_id"])
        if not product:
            continue
        weight = product["finished_weight_kg"] if o["id"] in demoulded else product["demould_weight_kg"]
        if weight is not None:
            mass += weight
            weighed += 1
            by_family[product["family"]] += weight
            by_phase[active[o["id"]]["phase_id"]] += weight
    total = body["total_mass_kg"]
    assert total["basis"] == "theoretical"
    assert total["value"] == round(mass, 3) > 0
    assert total["weighed_orders"] == weighed
    assert total["wip_orders"] == len(active)
    assert total["stalled_orders_excluded"] == sum(1 for o in _wip_orders(rows) if o["id"] not in active) > 0
    orphans = [o for o in wip if o["product_id"] not in rows["products"]]
    assert total["coverage"] == round((len(wip) - len(orphans)) / len(wip), 4) < 1
    assert total["orders_after_demoulding"] == sum(o["id"] in demoulded for o in wip if o not in orphans) > 0
    assert {f["family"]: f["mass_kg"] for f in body["by_family"]["value"]} == {
        f: round(v, 3) for f, v in by_family.items()} | {f["family"]: 0.0 for f in body["by_family"]["value"]
                                                         if f["family"] not in by_family}
    assert {p["phase_id"]: p["mass_kg"] for p in body["by_phase"]["value"] if p["mass_kg"]} == {
        k: round(v, 3) for k, v in by_phase.items() if v}
    assert body["orphans"]["orders"] == len(orphans) > 0
    assert body["orphans"]["products"] == [{"product_id": UNKNOWN_PRODUCT, "orders": len(orphans)}]
    assert sorted(body["orphans"]["order_ids"]) == sorted(o["id"] for o in orphans)
    assert [p["name"] for p in body["demoulding_phases"]["matched_phases"]] == ["Desmoldagem"]
    assert "contains any of" in body["demoulding_phases"]["rule"]


@pytest.mark.parametrize("period", ["week", "month"])
def test_gelcoat_theoretical_usage_matches_rows(api_client, rows, period, pinned_queries):
    with pinned_queries("inventory.test_api.test_gelcoat_theoretical_usage_matches_rows"):
        body = api_client.get("/api/smartinventory/gelcoat_theoretical_usage", Q | {"period": period}).json()
    assert {p["name"] for p in body["gelcoat_phases"]["matched_phases"]} == {"Gelcoat Casco", "Gel-Coat Deck"}
    first = {}
    for p in rows["order_phases"]:
        if p["phase_id"] in (20, 21) and p["ended_at"] is not None and p["ended_at"] <= AS_OF:
            first[p["order_id"]] = min(first.get(p["order_id"], p["ended_at"]), p["ended_at"])
    orders = {o["id"]: o for o in rows["orders"]}
    buckets = defaultdict(lambda: [0, 0, 0.0])
    for order_id, when in first.items():
        local = when.astimezone(LISBON).date()
        start = local.replace(day=1) if period == "month" else local.fromordinal(local.toordinal() - local.weekday())
        acc = buckets[start.isoformat()]
        acc[0] += 1
        product = rows["products"].get(orders[order_id]["product_id"])
        if product and product["gelcoat_deck_qty"] is not None and product["gelcoat_hull_qty"] is not None:
            acc[1] += 1
            acc[2] += product["gelcoat_deck_qty"] + product["gelcoat_hull_qty"]
    got = {s["period_start"]: s for s in body["series"]["value"]}
    assert set(got) == set(buckets)
    for key, (n, n_qty, qty) in buckets.items():
        assert (got[key]["orders"], got[key]["orders_with_quantities"]) == (n, n_qty)
        assert got[key]["theoretical_qty"] == round(qty, 4)
    n_all = sum(v[0] for v in buckets.values())
    assert body["total_theoretical_qty"]["coverage"] == round(sum(v[1] for v in buckets.values()) / n_all, 4) < 1
    assert body["total_theoretical_qty"]["basis"] == "theoretical"
    assert "consumption" not in str(body["series"]).lower()
    assert "not a measured consumption" in body["rule"]


def test_gelcoat_period_validated(api_client, rows):
    assert api_client.get("/api/smartinventory/gelcoat_theoretical_usage", {"period": "day"}).status_code == 400


def test_not_supported_when_no_named_phase(api_client, rows):
    from orders.models import Phase

    Phase.objects.filter(id__in=[20, 21, 40]).update(name="Outra")
    for path, kind in (("wip_mass", "demoulding"), ("gelcoat_theoretical_usage", "gelcoat")):
        body = api_client.get(f"/api/smartinventory/{path}", Q).json()
        assert body["status"] == "NOT_SUPPORTED_BY_DATA"
        assert body["feature"] == path
        assert kind in body["reason"] and "Fases" in body["reason"]


@pytest.mark.parametrize("feature", ["real_stock", "material_consumption", "stock_valuation", "replenishment"])
def test_unsupported_features_name_missing_data(api_client, db, feature, pinned_queries):
    with pinned_queries("inventory.test_api.test_unsupported_features_name_missing_data"):
        response = api_client.get(f"/api/smartinventory/{feature}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "NOT_SUPPORTED_BY_DATA" and body["feature"] == feature
    assert "stock movements" in body["missing_data"][0]
    assert "no such data" in body["reason"]
    assert body["measured"] == 0.0 and body["sheets_with_stock_data"] == []
    assert "OrdensFabrico" in body["sheets_checked"]
