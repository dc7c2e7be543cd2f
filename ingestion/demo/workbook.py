"""The demo generator's entry points: generate_demo_workbook (workbook + manifest), order_history, the gate change."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from openpyxl import Workbook

from ingestion import contract
from ingestion.demo.catalogue import _catalogue, _employees
from ingestion.demo.columns import _columns, _keep_started_phase_rows, _planted_rows
from ingestion.demo.history import GateChange, _assignments, _errors, _orders
from ingestion.demo.shape import (
    GATE_HEADROOM,
    GATE_PHASE,
    MINUTES_PER_DAY,
    YEARS_OF_HISTORY,
    parse_as_of,
    planted_count,
    sizes_for,
)
from ingestion.demo.writer import _minutes, _save, _Watch, _write_sheet


def manifest_path(out_path: str | Path) -> Path:
    out = Path(out_path)
    return out.with_name(out.stem + ".manifest.json")


def _setup(scale: float, seed: int, as_of: str | datetime):
    as_of_dt = parse_as_of(as_of)
    as_of_min = int(np.datetime64(as_of_dt.replace(second=0, microsecond=0), "m").astype(np.int64))
    start_min = (as_of_min // MINUTES_PER_DAY - YEARS_OF_HISTORY * 365) * MINUTES_PER_DAY
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    return as_of_dt, as_of_min, start_min, sizes_for(scale), streams


GATE_FACTOR_RANGE = (0.1, 10.0)


def gate_change_for(factor: float | None, from_date: str | date | None, *, start_min: int,
                    as_of_min: int) -> GateChange | None:
    """The knob's arguments checked: both or neither; a factor in GATE_FACTOR_RANGE; a date inside the history
    (after its first day, on or before the as-of day). ValueError naming the argument otherwise."""
    if factor is None and from_date is None:
        return None
    if factor is None or from_date is None:
        raise ValueError("gate capacity: give both the factor and the date it applies from")
    low, high = GATE_FACTOR_RANGE
    if not low <= factor <= high:
        raise ValueError(f"gate capacity factor must be from {low} to {high} (got {factor})")
    try:
        day = from_date if isinstance(from_date, date) else date.fromisoformat(str(from_date).strip())
    except ValueError as exc:
        raise ValueError(f"gate capacity date must be YYYY-MM-DD (got {from_date!r})") from exc
    if isinstance(day, datetime):
        day = day.date()
    from_day = int(np.datetime64(day, "D").astype(np.int64))
    first, last = start_min // MINUTES_PER_DAY, as_of_min // MINUTES_PER_DAY
    if not first < from_day <= last:
        raise ValueError(f"gate capacity date must lie inside the history, after {_day_text(first)} and on or before "
                         f"the as-of day {_day_text(last)} (got {day.isoformat()})")
    return GateChange(factor=float(factor), from_day=from_day)


def _day_text(day: int) -> str:
    return str(np.datetime64(day, "D"))


def _mean_arrivals_per_day(orders: dict, start_min: int, as_of_min: int) -> float:
    """Orders created per day over the history: the unit of the gate's capacity (GATE_HEADROOM of them a day)."""
    return len(orders["create"]) * MINUTES_PER_DAY / max(as_of_min - start_min, MINUTES_PER_DAY)


def order_history(*, scale: float = 1.0, seed: int = 42, as_of: str | datetime = "2025-12-15",
                  gate_capacity_factor: float | None = None,
                  gate_capacity_from: str | date | None = None) -> dict[str, np.ndarray]:
    """The valid orders the workbook of these arguments holds, without writing it (for checks of its structure).

    Times are datetime64[m] (NaT: open); family is the index into FAMILIES; known: product in the catalogue.
    """
    _, as_of_min, start_min, sizes, streams = _setup(scale, seed, as_of)
    gate_change = gate_change_for(gate_capacity_factor, gate_capacity_from, start_min=start_min, as_of_min=as_of_min)
    cat = _catalogue(streams[0], sizes, start_min, as_of_min)
    orders, _rows = _orders(streams[2], cat, sizes, start_min, as_of_min, gate_change)
    return {
        "created": _minutes(orders["create"]),
        "finished": _minutes(orders["finish"]),
        "product_id": cat.product_ids[orders["product"]],
        "family": cat.product_family[orders["product"]],
        "known": cat.product_known[orders["product"]],
    }


def generate_demo_workbook(out_path: str | Path, *, scale: float = 1.0, seed: int = 42,
                           as_of: str | datetime = "2025-12-15", started_phase_rows_only: bool = False,
                           gate_capacity_factor: float | None = None,
                           gate_capacity_from: str | date | None = None) -> dict[str, Any]:
    """Write the demo workbook and its manifest; returns the manifest.

    started_phase_rows_only: the other export shape the contract allows, where the ERP creates a phase row
    only when work on it starts: FasesOrdemFabrico holds no row with both FaseOf_Inicio and FaseOf_Fim empty.
    The rows kept are the default file's rows (the same random draws; rows are dropped after them).

    gate_capacity_factor / gate_capacity_from (both or neither): the gate phase's (GATE_PHASE) capacity is
    multiplied by the factor from the start of that day on. Two workbooks of one seed that differ only in the
    factor hold the same orders and the same phase rows (ids, times, cells) for every phase row whose work was
    ready before that day; after it, the gate releases work at the new rate and everything downstream follows.
    With the knob, which started rows carry a planned date is drawn row by row (not as an exact count), so
    that choice does not depend on what started after the date; the team and quality-error sheets are drawn
    from the started rows and differ between the two files. Without the knob the file is unchanged.
    """
    out_path = Path(out_path)
    as_of_dt, as_of_min, start_min, sizes, streams = _setup(scale, seed, as_of)
    gate_change = gate_change_for(gate_capacity_factor, gate_capacity_from, start_min=start_min, as_of_min=as_of_min)
    rng_cat, rng_emp, rng_orders, rng_assign, rng_errors, rng_style, rng_plant, _spare = streams

    cat = _catalogue(rng_cat, sizes, start_min, as_of_min)
    emp = _employees(rng_emp, cat, sizes.rows[contract.EMPLOYEES.name], sizes.rows[contract.SKILLS.name], as_of_min)
    orders, rows = _orders(rng_orders, cat, sizes, start_min, as_of_min, gate_change)
    n_assign = sizes.rows[contract.ASSIGNMENTS.name] - planted_count(contract.ASSIGNMENTS.name)
    assign = _assignments(rng_assign, cat, emp, rows, n_assign)
    n_err_rows = sizes.rows[contract.ERRORS.name]
    n_err_planted = planted_count(contract.ERRORS.name)
    planted_culprits = round(contract.CULPRIT_FILL_RATE * n_err_planted)
    errors = _errors(rng_errors, cat, rows, orders, n_err_rows - n_err_planted,
                     round(contract.CULPRIT_FILL_RATE * n_err_rows) - planted_culprits)

    sheets = _columns(rng_style, cat, emp, orders, rows, assign, errors, sizes, as_of_min,
                      planned_row_by_row=gate_change is not None)
    plants = _planted_rows(rng_plant, sheets, rows, errors, orders, planted_culprits)
    if started_phase_rows_only:  # after every random draw: the default file is unchanged by the option
        dropped_phase_rows = _keep_started_phase_rows(sheets, plants, rows)

    wanted = {
        contract.ORDERS.name: {"Of_ProdutoId": True},
        contract.PRODUCTS.name: {"Produto_Id": True},
        contract.ORDER_PHASES.name: {"FaseOf_Id": True, "FaseOf_DataPrevista": False},
        contract.ASSIGNMENTS.name: {"FuncionarioFaseOf_FaseOfId": True},
        contract.ERRORS.name: {"Erro_FaseOfCulpada": False},
    }
    watches = {sheet: {col: _Watch(ids) for col, ids in cols.items()} for sheet, cols in wanted.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=True)
    written = {}
    for sheet in contract.REAL_ROW_COUNTS:  # the order of the contract's table
        spec = contract.SHEETS_BY_NAME[sheet]
        written[sheet] = _write_sheet(wb, spec, sheets[sheet], plants.get(sheet, []), watches.get(sheet, {}))
    _save(wb, out_path, as_of_dt)

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 6) if whole else None

    product_ids = watches[contract.ORDERS.name]["Of_ProdutoId"].ids
    catalogue_ids = watches[contract.PRODUCTS.name]["Produto_Id"].ids
    assignment_ids = watches[contract.ASSIGNMENTS.name]["FuncionarioFaseOf_FaseOfId"].ids
    phase_row_ids = watches[contract.ORDER_PHASES.name]["FaseOf_Id"].ids
    planned = watches[contract.ORDER_PHASES.name]["FaseOf_DataPrevista"]
    culprit = watches[contract.ERRORS.name]["Erro_FaseOfCulpada"]
    rates = {
        "FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FaseOfId -> FasesOrdemFabrico.FaseOf_Id": {
            "measure": "matched distinct values / distinct values",
            "target": contract.REAL_MATCH_RATES[(contract.ASSIGNMENTS.name, "FuncionarioFaseOf_FaseOfId")],
            "achieved": rate(len(assignment_ids & phase_row_ids), len(assignment_ids)),
            "matched": len(assignment_ids & phase_row_ids),
            "distinct": len(assignment_ids),
        },
        "OrdensFabrico.Of_ProdutoId -> Modelos.Produto_Id": {
            "measure": "matched distinct values / distinct values",
            "target": contract.REAL_MATCH_RATES[(contract.ORDERS.name, "Of_ProdutoId")],
            "achieved": rate(len(product_ids & catalogue_ids), len(product_ids)),
            "matched": len(product_ids & catalogue_ids),
            "distinct": len(product_ids),
        },
        "FasesOrdemFabrico.FaseOf_DataPrevista filled": {
            "measure": "filled cells / rows",
            "target": contract.PLANNED_DATE_FILL_RATE,
            "achieved": rate(planned.filled, planned.rows),
            "filled": planned.filled,
            "rows": planned.rows,
        },
        "OrdemFabricoErros.Erro_FaseOfCulpada filled": {
            "measure": "filled cells / rows",
            "target": contract.CULPRIT_FILL_RATE,
            "achieved": rate(culprit.filled, culprit.rows),
            "filled": culprit.filled,
            "rows": culprit.rows,
        },
    }
    manifest = {
        "workbook": out_path.name,
        "generator": "ingestion.demo",
        "args": {"scale": scale, "seed": seed, "as_of": as_of if isinstance(as_of, str) else as_of.isoformat()},
        "as_of": as_of_dt.isoformat(),
        "history_start": _minutes(np.array([start_min]))[0].astype(object).isoformat(),
        "sheets": written,
        "planted_reject_counts": {
            sheet: {reason: len(rows_) for reason, rows_ in info["planted_rejects"].items()}
            for sheet, info in written.items()
            if info["planted_rejects"]
        },
        "planted_rates": rates,
        "open_orders": int((orders["finish"] < 0).sum()),
    }
    if gate_change is not None:  # only then: the default manifest keeps its bytes
        manifest["args"]["gate_capacity_factor"] = gate_change.factor
        manifest["args"]["gate_capacity_from"] = _day_text(gate_change.from_day)
        manifest["gate_capacity"] = {
            "phase": GATE_PHASE, "phase_id": int(cat.phase_ids[cat.phase_name.index(GATE_PHASE)]),
            "factor": gate_change.factor, "from": _day_text(gate_change.from_day),
            "usual_capacity_per_day": round(GATE_HEADROOM * _mean_arrivals_per_day(orders, start_min, as_of_min), 4),
        }
    if started_phase_rows_only:  # only then: the default manifest keeps its bytes
        manifest["args"]["started_phase_rows_only"] = True
        manifest["started_phase_rows_only"] = True
        manifest["not_started_phase_rows_dropped"] = dropped_phase_rows
        with_rows = np.bincount(rows["order"][rows["started"]], minlength=len(orders["ids"])) > 0
        manifest["open_orders_without_phase_rows"] = int(((orders["finish"] < 0) & ~with_rows).sum())
    manifest_path(out_path).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest
