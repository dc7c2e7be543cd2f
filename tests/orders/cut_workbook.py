"""A workbook cut at a past moment from the stored rows: what the ERP's export would have held then.

The no-hindsight property test (test_no_hindsight.py) ingests such a file and checks that every figure at
that moment equals the one computed from the full data with as_of set to it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from ingestion import contract

# The workbook's convention (ingestion.reader.coerce_datetime, ingestion.contract.LOCAL_ZONE): cells hold naive
# Lisbon local time. Converting a stored instant back to it round-trips: the stored instant came from PostgreSQL
# reading that same local time (an ambiguous or skipped hour maps back to the instant it was stored as).
LISBON = ZoneInfo("Europe/Lisbon")


def _local(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(LISBON).replace(tzinfo=None)


def _known(value: datetime | None, at: datetime) -> datetime | None:
    """A date as known at `at`: itself when at or before it, else empty (it had not happened yet)."""
    return value if value is not None and value <= at else None


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def write_cut_workbook(path: str | Path, *, at: datetime, not_started_rows: bool | None = None) -> dict[str, int]:
    """Write the stored domain rows, cut at `at`, as a complete contract workbook; returns the rows written per sheet.

    `at` must be aware. The cut, sheet by sheet ("by at" means at or before it, as the selectors read as_of):

    - OrdensFabrico: orders created after `at` are left out, with their phase rows, assignments and errors
      (undated orders are kept: the selectors count them at every as_of). Of_DataAcabamento and
      Of_DataTransporte after `at` are emptied. Of_FaseId of an order still open at `at` is emptied: the ERP's
      current phase is the phase at the snapshot, and which phase it named at `at` is unknown.
    - FasesOrdemFabrico: the rows of kept orders (and of unknown orders). An end after `at` empties the end: the
      row is in progress. A start after `at` depends on the export's shape (DATA_CONTRACT: the ERP may export
      not-yet-started rows or create a row only when work starts), read from the stored rows: when they hold
      not-started rows (both dates empty), the row stays, with start, end and shift (FaseOf_Turno, which the
      export fills only for started rows) emptied: it is not started. When they hold none (started rows
      only), the row is left out: at `at` it did not exist yet. Planned date, coefficients, weight, rework
      flag and sequence of a kept row are kept (they describe the route, not an event).
    - FuncionariosFaseOrdemFabrico: only assignments to a stored phase row started by `at`. An assignment whose
      phase row is unknown (about two thirds of the real rows) carries no time at all and is left out.
    - OrdemFabricoErros: errors carry no date, so the moment an error is known is derived from the phase they
      point to (ingestion dates an error by its found phase's end; the cut uses that phase's start, the first
      moment the defect can have been found). An error is kept when the order phase where it was found
      (Erro_FaseOfAvaliacao) is a stored row started by `at` (its order must also be kept). An error whose found phase is empty or unknown is kept only when its order is
      a stored order finished by `at` (by then every inspection of the order is over). Every other error is
      left out. Identical rows stay separate rows (two stored occurrences, two rows written).
    - FuncionariosFasesAptos: a qualification starting after `at` is left out (it did not exist then).
    - Fases, Modelos, FasesStandardModelos, Funcionarios: catalogues, written whole.

    not_started_rows: the export shape when given (True: not-started rows are exported), else read as above.
    Rows are written in key order; nothing is planted, so every row of the file loads.
    """
    from orders.models import (
        Employee,
        EmployeeSkill,
        ManufacturingOrder,
        OrderPhase,
        Phase,
        PhaseAssignment,
        Product,
        RouteStep,
    )
    from quality.models import QualityError

    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    rows: dict[str, list[list]] = {}

    rows[contract.PHASES.name] = [
        [p["id"], p["name"], p["sequence"], _flag(p["is_production"]), _flag(p["is_automatic"])]
        for p in Phase.objects.order_by("id").values("id", "name", "sequence", "is_production", "is_automatic")
    ]
    rows[contract.PRODUCTS.name] = [
        [p["id"], p["name"], p["demould_weight_kg"], p["finished_weight_kg"], p["gelcoat_deck_qty"], p["gelcoat_hull_qty"]]
        for p in Product.objects.order_by("id").values(
            "id", "name", "demould_weight_kg", "finished_weight_kg", "gelcoat_deck_qty", "gelcoat_hull_qty")
    ]
    rows[contract.ROUTE_STEPS.name] = [
        [s["product_id"], s["phase_id"], s["sequence"], s["labour_coefficient"], s["machine_coefficient"]]
        for s in RouteStep.objects.order_by("product_id", "phase_id", "sequence").values(
            "product_id", "phase_id", "sequence", "labour_coefficient", "machine_coefficient")
    ]
    rows[contract.EMPLOYEES.name] = [
        [e["id"], e["name"], _flag(e["is_active"])]
        for e in Employee.objects.order_by("id").values("id", "name", "is_active")
    ]
    rows[contract.SKILLS.name] = [
        [s["employee_id"], s["phase_id"], _local(s["qualified_since"])]
        for s in EmployeeSkill.objects.order_by("employee_id", "phase_id").values("employee_id", "phase_id", "qualified_since")
        if s["qualified_since"] is None or s["qualified_since"] <= at
    ]

    orders = list(ManufacturingOrder.objects.order_by("id").values(
        "id", "created_at", "finished_at", "product_id", "current_phase_id", "shipped_at"))
    dropped_orders = {o["id"] for o in orders if o["created_at"] is not None and o["created_at"] > at}
    kept_orders = {o["id"]: o for o in orders if o["id"] not in dropped_orders}
    finished_by_at = {oid for oid, o in kept_orders.items() if _known(o["finished_at"], at) is not None}
    rows[contract.ORDERS.name] = [
        [o["id"], _local(o["created_at"]), _local(_known(o["finished_at"], at)), o["product_id"],
         o["current_phase_id"] if oid in finished_by_at else None, _local(_known(o["shipped_at"], at))]
        for oid, o in kept_orders.items()
    ]

    if not_started_rows is None:
        not_started_rows = OrderPhase.objects.filter(started_at__isnull=True, ended_at__isnull=True).exists()
    phase_rows = []
    started_by_at: set[int] = set()
    stored_phase_rows: set[int] = set()
    for p in OrderPhase.objects.order_by("id").values(
        "id", "order_id", "started_at", "ended_at", "planned_at", "labour_coefficient", "machine_coefficient",
        "phase_id", "weight_kg", "is_rework", "shift", "sequence",
    ):
        stored_phase_rows.add(p["id"])
        if p["order_id"] in dropped_orders:
            continue
        started = _known(p["started_at"], at)
        if started is None and p["started_at"] is not None and not not_started_rows:
            continue  # started after `at`, in an export of started rows only: the row did not exist yet
        ended = _known(p["ended_at"], at) if started is not None else None
        if started is not None:
            started_by_at.add(p["id"])
        phase_rows.append([
            p["id"], p["order_id"], _local(started), _local(ended), _local(p["planned_at"]), p["labour_coefficient"],
            p["machine_coefficient"], p["phase_id"], p["weight_kg"], _flag(p["is_rework"]),
            p["shift"] if started is not None else None, p["sequence"],
        ])
    rows[contract.ORDER_PHASES.name] = phase_rows

    rows[contract.ASSIGNMENTS.name] = [
        [a["order_phase_id"], a["employee_id"], _flag(a["is_leader"])]
        for a in PhaseAssignment.objects.order_by("order_phase_id", "employee_id").values(
            "order_phase_id", "employee_id", "is_leader")
        if a["order_phase_id"] in started_by_at
    ]

    def error_known(e: dict) -> bool:
        if e["order_id"] in dropped_orders:
            return False
        found = e["found_order_phase_id"]
        if found is not None and found in stored_phase_rows:
            return found in started_by_at
        return e["order_id"] in finished_by_at

    rows[contract.ERRORS.name] = [
        [e["description"], e["order_id"], e["found_phase_id"], e["severity"], e["found_order_phase_id"],
         e["culprit_order_phase_id"]]
        for e in QualityError.objects.order_by("order_id", "content_hash", "occurrence").values(
            "description", "order_id", "found_phase_id", "severity", "found_order_phase_id", "culprit_order_phase_id",
            "content_hash", "occurrence")
        if error_known(e)
    ]

    workbook = Workbook(write_only=True)
    for spec in contract.SHEETS:
        sheet = workbook.create_sheet(spec.name)
        sheet.append(spec.headers)
        for row in rows[spec.name]:
            assert len(row) == len(spec.headers), spec.name
            sheet.append(row)
    workbook.save(Path(path))
    return {spec.name: len(rows[spec.name]) for spec in contract.SHEETS}
