"""No hindsight, as a property: a workbook cut at D and ingested gives the same answers at D as the full one.

Every figure at as_of may use only what was knowable then: orders created and phase events started or
ended by as_of (a phase that ended later is in progress at as_of), thresholds and baselines from orders
finished by as_of. So a full workbook read with as_of=D must answer exactly as the workbook exported at D
(tests/orders/cut_workbook.py: the stored rows with everything after D removed) read with as_of=D. A
difference means a figure at D depends on something that happened after D.

Checked on the session's demo workbook (both export shapes of the contract: with and without not-started
phase rows) at two dates, and on a hand-made workbook with what the small demo never holds: phases running
across the start of a selector's window, and a rework pass (with a defect found in it) after an order's finish.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from tests.conftest import DOMAIN_TABLES, FORGET_AS_OF, clear_caches
from tests.orders.cut_workbook import write_cut_workbook

pytestmark = pytest.mark.django_db

LISBON = ZoneInfo("Europe/Lisbon")
# Two dates inside the demo data (as-of 2025-12-15, orders since December 2021), at a round local time. The
# small demo has one or two orders open at most past dates; 40 and 240 days before its as-of have open orders
# and phases running across D (120 days before has none: every figure there would be about finished orders).
DAYS_BEFORE_AS_OF = (40, 240)
TOLERANCE = {"rel": 1e-9, "abs": 1e-9}  # the same rows summed in another order


def _truncate() -> None:
    """Empty domain and audit tables inside the test transaction (the rollback restores them).

    The aggregates (orders_ordersummary, orders_productphasestat) are rebuilt whole by every ingestion.

    The runs go too: the shrink guard compares a file with the last successful run's rows, and the cut
    file is meant to replace, not shrink, what is stored. The audit rows of a run ingested in this same
    transaction carry deferred foreign-key checks, which must fire before their tables can be truncated."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_reject, ingestion_sheetrun, "
            "ingestion_dataqualityissue, ingestion_ingestionrun CASCADE"
        )
        cursor.execute(FORGET_AS_OF)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _ingest(path):
    """Replace every stored row by the file's; returns the succeeded run."""
    from ingestion.services import ingest_workbook

    _truncate()
    clear_caches()
    run = ingest_workbook(path=str(path), profile=False, warm_caches=False)
    assert run.status == "succeeded", run.error
    clear_caches()
    return run


def _flat(value, path: str = "") -> dict:
    """Nested answers as {path: leaf}; datetimes as ISO text so both sides compare exactly."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{path}.{key}" if path else str(key)))
        return out or {path: {}}
    if isinstance(value, list | tuple):
        # Items about an order or a phase are keyed by it (their order is compared apart), others by position.
        labels = [_label(item) for item in value]
        if labels and all(labels) and len(set(labels)) == len(labels):
            out = {f"{path}.#order": " ".join(labels)}
            for label, item in zip(labels, value, strict=True):
                out.update(_flat(item, f"{path}[{label}]"))
            return out
        out = {f"{path}.#len": len(value)}
        for i, item in enumerate(value):
            out.update(_flat(item, f"{path}[{i}]"))
        return out
    if isinstance(value, datetime):
        return {path: value.isoformat()}
    return {path: value}


def _label(item) -> str:
    """Which order or phase a list item is about, in its path (a difference then names it)."""
    if not isinstance(item, dict):
        return ""
    for key in ("order_id", "phase_id"):
        if key in item:
            return f"{key}={item[key]}"
    for key in ("product", "phase"):
        about = item.get(key, ...)
        if isinstance(about, dict) and "id" in about:
            return f"{key}_id={about['id']}"
        if about is None:
            return f"{key}_id=None"
    return ""


def _answers(as_of: datetime) -> dict:
    """Every answer at as_of that the property covers, flattened."""
    from inventory.selectors import wip
    from orders import selectors

    summary = selectors.state_summary(as_of=as_of)
    open_rows = [
        {k: r[k] for k in ("order_id", "state", "flow_state", "phase_id", "placement_basis", "since", "last_event_at",
                           "reworks", "status", "threshold_scope", "stall_threshold_seconds", "at_risk_days",
                           "late_days", "p75_days")}
        | {"age_days": None if r["age_days"] is None else round(r["age_days"], 6)}
        for r in selectors.open_orders_at(as_of=as_of)
    ]
    schedule = selectors.schedule_current(as_of=as_of)
    bottlenecks = selectors.bottleneck_table(as_of=as_of)
    risk = selectors.risk_queue(as_of=as_of, limit=100_000)
    answers = {
        "state_summary": {k: summary[k] for k in ("states", "open_orders", "placement", "stall_threshold")},
        "open_orders_at": open_rows,
        "lead_time_thresholds": selectors.lead_time_thresholds(as_of=as_of),
        # The stall baselines (per-phase gap percentiles, and the phase most often next, for placement).
        "stall_thresholds": selectors.stall_thresholds(as_of=as_of),
        "schedule_current": {k: schedule[k] for k in ("open_orders", "active_orders", "positioned_orders", "coverage",
                                                     "phases", "stalled")},
        "bottleneck_table": bottlenecks,
        "risk_queue": {"open_orders": risk["open_orders"], "active_orders": risk["active_orders"],
                       "orders": [{k: r[k] for k in ("order_id", "score", "components", "reasons", "phase")}
                                  for r in risk["orders"]]},
        # The default window: the 12 weeks ending on D's date (WIP at D itself).
        "kpi_overview": selectors.kpi_overview(as_of=as_of),
        "kpi_by_product": selectors.kpi_by_product(as_of=as_of),
        "kpi_by_phase": selectors.kpi_by_phase(as_of=as_of),
    }
    # SmartInventory's WIP is the order state's active orders, with catalogue data and placement bases.
    answers["inventory_wip"] = wip(as_of=as_of)
    return _flat(answers)


def _differences(full: dict, cut: dict) -> dict[str, str]:
    """{path: what differs}: leaves that differ, and each list item present on one side only (once)."""
    diffs = {}
    for key in sorted(set(full) | set(cut)):
        if key in full and key in cut:
            a, b = full[key], cut[key]
            same = b == pytest.approx(a, **TOLERANCE) if isinstance(a, float) and isinstance(b, float) else (
                a == b and type(a) is type(b))
            if not same:
                diffs[key] = f"{a!r} (full) != {b!r} (cut)"
            continue
        mine, other = (full, cut) if key in full else (cut, full)
        # The shortest item prefix the other side lacks altogether, else the leaf itself.
        prefixes = [key[: i + 1] for i, ch in enumerate(key) if ch == "]"]
        item = next((p for p in prefixes if not any(k.startswith(p) for k in other)), key)
        where = "only in the full workbook's answer" if mine is full else "only in the cut workbook's answer"
        diffs[item] = f"{where}" + ("" if item != key else f": {mine[key]!r}")
    return diffs


def _event_counts(at: datetime) -> dict:
    """What the cut at `at` changes in the stored full data (so the test is never vacuous)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT count(*) FROM orders_manufacturingorder WHERE created_at > %(at)s),
                   (SELECT count(*) FROM orders_manufacturingorder
                     WHERE created_at <= %(at)s AND (finished_at IS NULL OR finished_at > %(at)s)),
                   (SELECT count(*) FROM orders_orderphase WHERE started_at <= %(at)s AND ended_at > %(at)s),
                   (SELECT count(*) FROM orders_orderphase p JOIN orders_manufacturingorder o ON o.id = p.order_id
                     WHERE o.created_at <= %(at)s AND p.started_at > %(at)s)
            """,
            {"at": at},
        )
        later_orders, open_at, ended_later, started_later = cursor.fetchone()
    return {"orders_created_later": later_orders, "orders_open_at": open_at,
            "phases_ended_later": ended_later, "phases_started_later": started_later}


def _assert_same_answers_at(full_path, tmp_path, as_of: Callable[[datetime], datetime]) -> None:
    """Ingest the full file, answer at D = as_of(the data's as-of); cut the stored rows at D, ingest the cut,
    answer at D again; compare."""
    as_of = as_of(_ingest(full_path).as_of)
    changed = _event_counts(as_of)
    assert all(n > 0 for n in changed.values()), changed  # the cut removes and hides real events
    full = _answers(as_of)
    assert full["state_summary.open_orders"] > 0
    assert full["bottleneck_table.#order"]  # phases ranked at D

    path = tmp_path / f"cut_{as_of:%Y%m%dT%H%M}.xlsx"
    written = write_cut_workbook(path, at=as_of)
    assert written["OrdensFabrico"] > 0 and written["FasesOrdemFabrico"] > 0
    cut_run = _ingest(path)
    for sheet, n in written.items():  # the whole cut file loaded, nothing rejected
        assert cut_run.counts[sheet]["rows_loaded"] == n, sheet
        assert cut_run.counts[sheet]["rows_rejected"] == 0, sheet
    # The cut's snapshot is at or before D, so as_of=D is at or after it and the ERP-phase fallback
    # (Of_FaseId) is allowed there, while with the full file (snapshot after D) it is not. Not excluded: it
    # must change nothing, since the cut empties Of_FaseId of the orders open at D (which phase the ERP named
    # at D is unknown) and the fallback only places open orders.
    assert cut_run.as_of <= as_of

    cut = _answers(as_of)
    diffs = _differences(full, cut)
    assert not diffs, (
        f"{len(diffs)} figures at {as_of.isoformat()} differ between the full workbook (as_of=D) and the workbook "
        "cut at D:\n" + "\n".join(f"  {k}: {v}" for k, v in list(diffs.items())[:80])
    )


@pytest.fixture(scope="module")
def demo_workbook_started_rows_only(tmp_path_factory) -> dict:
    """The session's demo workbook in the other export shape: a phase row only once work on it has started."""
    from django.core.management import call_command

    from tests.conftest import DEMO_AS_OF, DEMO_SCALE, DEMO_SEED

    path = tmp_path_factory.mktemp("workbook_started") / "Folha_IA_demo_started.xlsx"
    call_command("make_demo_workbook", str(path), scale=DEMO_SCALE, seed=DEMO_SEED, as_of=DEMO_AS_OF,
                 started_phase_rows_only=True)
    return {"path": path}


@pytest.mark.parametrize("shape", ["all_rows", "started_rows_only"])
@pytest.mark.parametrize("days_before", DAYS_BEFORE_AS_OF)
def test_the_demo_workbook_cut_at_d_answers_as_the_full_one_at_d(request, tmp_path, days_before, shape):
    workbook = request.getfixturevalue("demo_workbook" if shape == "all_rows" else "demo_workbook_started_rows_only")

    def noon_days_before(data_as_of: datetime) -> datetime:
        day = data_as_of.astimezone(LISBON).date() - timedelta(days=days_before)
        return datetime.combine(day, time(12, 0), tzinfo=LISBON)

    _assert_same_answers_at(workbook["path"], tmp_path, noon_days_before)


# --- the same property on a hand-made workbook with the events the small demo never has ---------------------

EDGE_D = datetime(2025, 6, 15, 12, 0, tzinfo=LISBON)
EDGE_PRODUCT = 101


def _edge_rows() -> dict[str, list[list]]:
    """A factory around EDGE_D (naive Lisbon times, as in the real file) with history on both sides of it and:

    - 7001: a phase in progress at D that started 20 days before it (before the bottleneck window's 14 days)
      and ends 2 days after it;
    - 7002: a phase in progress at D that started 140 days before it (before the flow lookback of 134 days)
      and ends a day after it;
    - 7003: an order finished 5 days before D that went back for a rework pass 3 days after D, where a defect
      was found (an error whose found phase starts after D);
    - 7004, 7005: active orders of the same product, waiting and in progress at D (they carry the risk score);
    - 7006: a phase (5, used by no other order) in progress at D that started 190 days before it (before the
      stall window of 180 days) and ends a day after it, and a phase 6 started and ended while it ran.
    """
    import random

    d = EDGE_D.replace(tzinfo=None)
    day, hour = timedelta(days=1), timedelta(hours=1)
    rng = random.Random(11)
    rows: dict[str, list[list]] = {
        "Fases": [[1, "Moldação", 10, 1, 0], [2, "Cura", 20, 1, 1], [3, "Laminação", 30, 1, 0], [4, "Inspeção", 40, 1, 0],
                  [5, "Pós-cura longa", 50, 1, 1], [6, "Reparação", 60, 1, 0]],
        "Modelos": [[EDGE_PRODUCT, "K1 Sprint", 14.0, 12.0, 1.5, 2.0], [102, "C2 Tour", 30.0, 27.0, 2.0, 3.0]],
        "FasesStandardModelos": [[pid, ph, 10 * ph, 1.0, 0.5] for pid in (EDGE_PRODUCT, 102) for ph in (1, 2, 3, 4)],
        "Funcionarios": [[100, "Ana Silva", 1], [101, "Rui Costa", 1]],
        "FuncionariosFasesAptos": [[100, 1, d - 400 * day], [101, 3, d + 10 * day]],
        "OrdensFabrico": [], "FasesOrdemFabrico": [], "FuncionariosFaseOrdemFabrico": [], "OrdemFabricoErros": [],
    }
    next_row = iter(range(50_000, 60_000))

    def order(oid, product, created, phases, *, finished=None, current=None):
        """phases: (phase, start, end, rework) with None for not started / not ended."""
        rows["OrdensFabrico"].append([oid, created, finished, product, current, None])
        ids = []
        for seq, (phase, start, end, rework) in enumerate(phases, start=1):
            rid = next(next_row)
            ids.append(rid)
            rows["FasesOrdemFabrico"].append([rid, oid, start, end, None, 1.0, 0.5, phase, 12.0, int(rework),
                                              None if start is None else 1, seq])
            if start is not None:
                rows["FuncionariosFaseOrdemFabrico"].append([rid, 100 + seq % 2, int(seq == 1)])
        return ids

    # History: orders created from 400 days before D to 30 days after it, each through the four phases.
    for oid in range(1, 121):
        product = EDGE_PRODUCT if oid % 3 else 102
        created = d - timedelta(days=rng.uniform(-30, 400), hours=rng.uniform(0, 8))
        t, phases = created, []
        for phase in (1, 2, 3, 4):
            start = t + timedelta(hours=rng.uniform(2, 60))
            end = start + timedelta(hours=rng.uniform(0.5, 12))
            phases.append((phase, start, end, False))
            t = end
        ids = order(oid, product, created, phases, finished=t + hour, current=4)
        if oid % 4 == 0:  # a defect found at inspection
            rows["OrdemFabricoErros"].append(["risco", oid, 4, 1 + oid % 3, ids[3], ids[1] if oid % 8 else None])

    order(7001, EDGE_PRODUCT, d - 30 * day, [(1, d - 29 * day, d - 28 * day, False), (2, d - 20 * day, d + 2 * day, False),
                                             (3, None, None, False), (4, None, None, False)],
          finished=d + 4 * day, current=4)
    order(7002, 102, d - 150 * day, [(1, d - 140 * day, d + day, False), (2, None, None, False), (3, None, None, False)],
          finished=d + 3 * day, current=3)
    ids = order(7003, EDGE_PRODUCT, d - 20 * day,
                [(1, d - 19 * day, d - 18 * day, False), (2, d - 15 * day, d - 12 * day, False),
                 (3, d - 10 * day, d - 8 * day, False), (4, d - 6 * day, d - 5 * day - 2 * hour, False),
                 (3, d + 3 * day, d + 3 * day + 4 * hour, True)],
                finished=d - 5 * day, current=3)
    rows["OrdemFabricoErros"].append(["bolha no retorno", 7003, 3, 2, ids[4], ids[2]])
    order(7004, EDGE_PRODUCT, d - 3 * day, [(1, d - 3 * day + hour, d - 2 * day, False), (2, None, None, False),
                                            (3, None, None, False), (4, None, None, False)],
          finished=d + 6 * day, current=4)
    order(7005, EDGE_PRODUCT, d - 2 * day, [(1, d - 2 * day + hour, d - day, False), (2, d - 4 * hour, d + day, False),
                                            (3, None, None, False), (4, None, None, False)],
          finished=d + 5 * day, current=4)
    order(7006, 102, d - 200 * day, [(5, d - 190 * day, d + day, False), (6, d - 100 * day, d - 99 * day, False)],
          finished=d + 2 * day, current=6)
    return rows


@pytest.mark.parametrize("shape", ["all_rows", "started_rows_only"])
def test_a_workbook_with_long_phases_and_late_reworks_cut_at_d_answers_as_the_full_one_at_d(tmp_path, shape):
    from tests.ingestion.builders import write_workbook

    rows = _edge_rows()
    if shape == "started_rows_only":
        rows["FasesOrdemFabrico"] = [r for r in rows["FasesOrdemFabrico"] if r[2] is not None or r[3] is not None]
    path = write_workbook(tmp_path / "edge.xlsx", rows)
    _assert_same_answers_at(path, tmp_path, lambda _data_as_of: EDGE_D)
