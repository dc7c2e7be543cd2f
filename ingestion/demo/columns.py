"""The demo sheets as typed columns with their cell styles, the started-rows-only shape, the planted rows."""

from __future__ import annotations

import numpy as np

from ingestion import contract
from ingestion.demo.shape import MINUTES_PER_DAY, Sizes
from ingestion.demo.writer import (
    Col,
    Planted,
    _date_style,
    _fill_planted,
    _id_style,
    _minutes,
    _null_style,
    _plant,
)


def _columns(rng, cat, emp, orders, rows, assign, errors, sizes: Sizes, as_of_min: int,
             planned_row_by_row: bool = False) -> dict[str, dict[str, Col]]:
    """Every sheet's valid rows as typed columns with their cell styles (the measured quirks).

    planned_row_by_row: each started row carries a planned date with the same probability (one draw per row), so
    which rows do never depends on how many others started; otherwise exactly the target count is drawn."""
    phase_id = cat.phase_ids
    n_phases = len(phase_id)
    sheets: dict[str, dict[str, Col]] = {}
    sheets[contract.PHASES.name] = {
        "Fase_Id": Col(phase_id, style=_id_style(rng, n_phases)),
        "Fase_Nome": Col(np.array(cat.phase_name, dtype=object)),
        "Fase_Sequencia": Col((np.arange(n_phases) + 1) * 10),
        "Fase_DeProducao": Col(cat.production.astype(np.int64)),
        "Fase_Automatica": Col(cat.automatic.astype(np.int64)),
    }
    known = np.flatnonzero(cat.product_known)
    sheets[contract.PRODUCTS.name] = {
        "Produto_Id": Col(cat.product_ids[known], style=_id_style(rng, len(known))),
        "Produto_Nome": Col(np.array(cat.product_name, dtype=object)[known]),
        "Produto_PesoDesmolde": Col(cat.demould_kg[known], decimals=2),
        "Produto_PesoAcabamento": Col(cat.finished_kg[known], decimals=2),
        "Produto_QtdGelDeck": Col(cat.gel_deck[known], decimals=3),
        "Produto_QtdGelCasco": Col(cat.gel_hull[known], decimals=3),
    }
    steps_product = np.repeat(known, cat.route_len[known])
    steps_pos = np.arange(len(steps_product)) - np.repeat(np.cumsum(cat.route_len[known]) - cat.route_len[known],
                                                          cat.route_len[known])
    n_steps = len(steps_product)
    sheets[contract.ROUTE_STEPS.name] = {
        "ProdutoFase_ProdutoId": Col(cat.product_ids[steps_product], style=_id_style(rng, n_steps)),
        "ProdutoFase_FaseId": Col(phase_id[cat.route_phase[steps_product, steps_pos]], style=_id_style(rng, n_steps)),
        "ProdutoFase_Sequencia": Col((steps_pos + 1) * 10),
        "ProdutoFase_Coeficiente": Col(cat.route_coef[steps_product, steps_pos], decimals=3),
        "ProdutoFase_CoeficienteX": Col(cat.route_coef_x[steps_product, steps_pos], decimals=3),
    }
    n_emp = len(emp["ids"])
    sheets[contract.EMPLOYEES.name] = {
        "Funcionario_Id": Col(emp["ids"], style=_id_style(rng, n_emp)),
        "Funcionario_Nome": Col(np.array(emp["names"], dtype=object)),
        "Funcionario_Activo": Col(emp["active"]),
    }
    n_skills = len(emp["skill_emp"])
    sheets[contract.SKILLS.name] = {
        "FuncionarioFase_FuncionarioId": Col(emp["ids"][emp["skill_emp"]], style=_id_style(rng, n_skills)),
        "FuncionarioFase_FaseId": Col(phase_id[emp["skill_phase"]], style=_id_style(rng, n_skills)),
        "FuncionarioFase_Inicio": Col(_minutes(emp["skill_since"]), style=_date_style(rng, n_skills, None, date_only=True)),
    }

    n = len(orders["ids"])
    open_ = orders["finish"] < 0
    no_transport = orders["transport"] < 0
    sheets[contract.ORDERS.name] = {
        "Of_Id": Col(orders["ids"], style=_id_style(rng, n)),
        "Of_DataCriacao": Col(_minutes(orders["create"]), style=_date_style(rng, n, None)),
        "Of_DataAcabamento": Col(_minutes(orders["finish"]), empty=open_, style=_date_style(rng, n, open_, nulls=True)),
        "Of_ProdutoId": Col(cat.product_ids[orders["product"]], style=_id_style(rng, n)),
        "Of_FaseId": Col(phase_id[orders["current_phase"]], style=_id_style(rng, n)),
        "Of_DataTransporte": Col(_minutes(orders["transport"]), empty=no_transport,
                                 style=_date_style(rng, n, no_transport, date_only=True, nulls=True)),
    }

    m = len(rows["ids"])
    started, ended = rows["started"], rows["ended"]
    not_started, not_ended = ~started, ~ended
    start = np.where(started, rows["start"], -1)
    end = np.where(ended, rows["end"], -1)
    # Inicio and Fim of a row share their text style, so a zero-length phase never reads as Fim < Inicio.
    shared = _date_style(rng, m, None)
    planned_style = _date_style(rng, m, None, date_only=True)
    start_style = np.where(not_started, _null_style(rng, not_started), shared).astype(np.int8)
    end_style = np.where(not_ended, _null_style(rng, not_ended), shared).astype(np.int8)
    planned = np.zeros(m, dtype=bool)
    n_planned = round(contract.PLANNED_DATE_FILL_RATE * sizes.rows[contract.ORDER_PHASES.name])
    if planned_row_by_row:
        planned = started & (rng.random(m) < n_planned / m)
    else:
        planned[rng.choice(np.flatnonzero(started), size=n_planned, replace=False)] = True
    # The plan was the start day, give or take a few days, never later than the snapshot.
    plan_day = rows["start"] // MINUTES_PER_DAY + np.rint(rng.normal(-0.5, 2.0, m)).astype(np.int64)
    plan = np.where(planned, np.minimum(plan_day, as_of_min // MINUTES_PER_DAY) * MINUTES_PER_DAY, -1)
    minute = rows["start"] % MINUTES_PER_DAY
    shift = np.where(minute < 360, 3, np.where(minute < 840, 1, np.where(minute < 1320, 2, 3)))
    product_of_row = orders["product"][rows["order"]]
    phase_position = rows["phase"]
    after_demould = phase_position > cat.phase_name.index("Desmoldagem Deck")
    unit_weight = np.where(after_demould, cat.finished_kg[product_of_row], cat.demould_kg[product_of_row])
    weight = unit_weight * rng.normal(1.0, 0.02, m)
    admin = ~cat.production[rows["phase"]]
    sheets[contract.ORDER_PHASES.name] = {
        "FaseOf_Id": Col(rows["ids"], style=_id_style(rng, m)),
        "FaseOf_OfId": Col(orders["ids"][rows["order"]], style=_id_style(rng, m)),
        "FaseOf_Inicio": Col(_minutes(start), empty=not_started, style=start_style),
        "FaseOf_Fim": Col(_minutes(end), empty=not_ended, style=end_style),
        "FaseOf_DataPrevista": Col(_minutes(plan), empty=~planned,
                                   style=np.where(planned, planned_style, _null_style(rng, ~planned)).astype(np.int8)),
        "FaseOf_Coeficiente": Col(rows["coef"], decimals=3),
        "FaseOf_CoeficienteX": Col(rows["coef_x"], decimals=3),
        "FaseOf_FaseId": Col(phase_id[rows["phase"]], style=_id_style(rng, m)),
        "FaseOf_Peso": Col(weight, empty=admin, style=_null_style(rng, admin), decimals=2),
        "FaseOf_Retorno": Col(rows["rework"].astype(np.int64)),
        "FaseOf_Turno": Col(shift, empty=not_started, style=_null_style(rng, not_started)),
        "FaseOf_Sequencia": Col(rows["sequence"]),
    }

    a = len(assign["fase_of_id"])
    sheets[contract.ASSIGNMENTS.name] = {
        "FuncionarioFaseOf_FaseOfId": Col(assign["fase_of_id"], style=_id_style(rng, a)),
        "FuncionarioFaseOf_FuncionarioId": Col(assign["employee"], style=_id_style(rng, a)),
        "FuncionarioFaseOf_Chefe": Col(assign["leader"]),
    }

    e = len(errors["order_id"])
    no_culprit = ~errors["culprit_filled"]
    sheets[contract.ERRORS.name] = {
        "Erro_Descricao": Col(errors["description"]),
        "Erro_OfId": Col(errors["order_id"], style=_id_style(rng, e)),
        "Erro_FaseAvaliacao": Col(errors["evaluation_phase"], style=_id_style(rng, e)),
        "OFCH_GRAVIDADE": Col(errors["severity"]),
        "Erro_FaseOfAvaliacao": Col(errors["evaluation_row"], style=_id_style(rng, e)),
        "Erro_FaseOfCulpada": Col(errors["culprit_row"], empty=no_culprit,
                                  style=np.where(no_culprit, _null_style(rng, no_culprit), _id_style(rng, e))
                                  .astype(np.int8)),
    }
    return sheets


def _keep_started_phase_rows(sheets: dict[str, dict[str, Col]], plants: dict[str, list[Planted]], rows: dict) -> int:
    """Drop the phase rows not started by the snapshot (both Inicio and Fim empty); returns how many.

    Nothing else points at a dropped row, so no other sheet loses rows and every planted rate keeps its
    meaning: errors are found at started phases and blamed on earlier phases of the same order (started
    before them), matched assignments name started production phases, and legacy assignment ids lie below
    every exported phase id. A planted reject copied from a not-started row is copied instead from the
    nearest earlier started, unplanned row (so it still holds its one defect, and a duplicate key still
    repeats a row that is written before it); its anchor moves to the last kept row at or before it.
    """
    started = rows["started"]
    dropped_ids = rows["ids"][~started]
    for sheet, column in ((contract.ASSIGNMENTS.name, "FuncionarioFaseOf_FaseOfId"),
                          (contract.ERRORS.name, "Erro_FaseOfAvaliacao"), (contract.ERRORS.name, "Erro_FaseOfCulpada")):
        col = sheets[sheet][column]
        named = col.values if col.empty is None else col.values[~col.empty]
        if np.isin(named, dropped_ids).any():  # pragma: no cover - a guard on the generator's own invariants
            raise RuntimeError(f"{sheet}.{column} points at a not-started phase row")

    phases = sheets[contract.ORDER_PHASES.name]
    planted = plants[contract.ORDER_PHASES.name]
    candidates = np.flatnonzero(started & phases["FaseOf_DataPrevista"].empty)
    used = {p.source for p in planted if started[p.source]}
    for plant in planted:
        if started[plant.source]:
            continue
        free = candidates[~np.isin(candidates, np.fromiter(used, dtype=np.int64, count=len(used)))]
        earlier = free[free <= plant.source]
        plant.source = int(earlier[-1] if len(earlier) else free[0])
        used.add(plant.source)
        if plant.reason == "duplicate_key":
            plant.anchor = max(plant.anchor, plant.source)
        _fill_planted(contract.ORDER_PHASES, phases, plant)
    last_kept = np.cumsum(started) - 1  # new index of the last kept row at or before each row (-1: none)
    for plant in planted:
        plant.anchor = int(last_kept[plant.anchor]) if plant.anchor >= 0 else -1
    sheets[contract.ORDER_PHASES.name] = {
        header: Col(col.values[started], None if col.empty is None else col.empty[started],
                    None if col.style is None else col.style[started], col.decimals)
        for header, col in phases.items()
    }
    return int((~started).sum())


def _planted_rows(rng, sheets, rows, errors, orders, planted_culprits: int) -> dict[str, list[Planted]]:
    """Planted rejects of the big sheets; fresh ids sit far above every real id, so nothing points at them."""
    phases = sheets[contract.ORDER_PHASES.name]
    unplanned_mask = phases["FaseOf_DataPrevista"].empty
    unplanned = np.flatnonzero(unplanned_mask)
    timed = np.flatnonzero(rows["ended"] & (rows["end"] > rows["start"]) & unplanned_mask)
    n_orders = len(orders["ids"])
    n_assign = len(sheets[contract.ASSIGNMENTS.name]["FuncionarioFaseOf_Chefe"].values)
    n_errors = len(errors["order_id"])
    plants = {
        contract.ORDERS.name: _plant(rng, contract.ORDERS, sheets[contract.ORDERS.name],
                                     {"any": np.arange(n_orders)}, int(orders["ids"].max()) + 1000),
        contract.ORDER_PHASES.name: _plant(rng, contract.ORDER_PHASES, phases,
                                           {"any": unplanned, "end_before_start": timed},
                                           int(rows["ids"].max()) + 1000),
        contract.ASSIGNMENTS.name: _plant(rng, contract.ASSIGNMENTS, sheets[contract.ASSIGNMENTS.name],
                                          {"any": np.arange(n_assign)}, None),
        contract.ERRORS.name: _plant(rng, contract.ERRORS, sheets[contract.ERRORS.name],
                                     {"any": np.arange(n_errors)}, None),
    }
    # Planted error rows keep the culprit fill rate: the first few name a culprit, the rest do not.
    headers = contract.ERRORS.headers
    culprit_j = headers.index("Erro_FaseOfCulpada")
    evaluation_j = headers.index("Erro_FaseOfAvaliacao")
    for k, plant in enumerate(plants[contract.ERRORS.name]):
        plant.cells[culprit_j] = plant.cells[evaluation_j] if k < planted_culprits else None
    return plants
