"""The naive baseline for bench/ingest.py: openpyxl read-only and a row-by-row executemany upsert."""

from __future__ import annotations

import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from openpyxl import load_workbook  # noqa: E402

from ingestion.contract import SHEETS  # noqa: E402
from ingestion.pipeline.sql import TARGETS  # noqa: E402
from ingestion.reader import COERCERS, CellError, coerce_text  # noqa: E402

BATCH = 1000


def naive_ingest(path: str) -> dict:
    """What a first version would do: read every cell with openpyxl, upsert row by row. Same target tables."""
    started = time.perf_counter()
    workbook = load_workbook(path, read_only=True, data_only=True)
    created: dict[int, object] = {}
    counts = {}
    with transaction.atomic(), connection.cursor() as cursor:
        for spec in SHEETS:
            target = TARGETS[spec.name]
            columns = [c for c in target.columns if c not in ("content_hash", "occurrence")]
            if not spec.key:
                columns += ["content_hash", "occurrence"]
            conflict = ", ".join(target.key)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in target.key) or None
            sql = (
                f"INSERT INTO {target.table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
                f"ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
            )
            sheet = workbook[spec.name]
            rows = sheet.iter_rows(values_only=True)
            headers = [str(h).strip() for h in next(rows)]
            position = {h: headers.index(h) for h in spec.headers}
            batch, seen, n = [], {}, 0
            for cells in rows:
                try:
                    values = {}
                    for header, kind in spec.columns.items():
                        raw = cells[position[header]] if position[header] < len(cells) else None
                        coercer = COERCERS.get(kind)
                        values[header] = coercer(raw) if coercer else coerce_text(raw, header)
                except CellError:
                    continue
                record = _record(spec.name, values, created, seen)
                if record is None:
                    continue
                batch.append([record[c] for c in columns])
                n += 1
                if len(batch) >= BATCH:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
            counts[spec.name] = n
    return {"seconds": round(time.perf_counter() - started, 3), "rows": counts}


def _record(sheet: str, v: dict, created: dict, seen: dict) -> dict | None:
    if sheet == "Fases":
        return None if v["Fase_Id"] is None else {"id": v["Fase_Id"], "name": v["Fase_Nome"] or "", "sequence": v["Fase_Sequencia"],
                                                  "is_production": v["Fase_DeProducao"] is not False, "is_automatic": bool(v["Fase_Automatica"])}
    if sheet == "Modelos":
        name = v["Produto_Nome"] or ""
        family = next((f for f in ("K1", "K2", "K4", "C1", "C2", "C4") if f in name.upper().split()), "OTHER")
        return None if v["Produto_Id"] is None else {"id": v["Produto_Id"], "name": name, "family": family,
                                                     "demould_weight_kg": v["Produto_PesoDesmolde"], "finished_weight_kg": v["Produto_PesoAcabamento"],
                                                     "gelcoat_deck_qty": v["Produto_QtdGelDeck"], "gelcoat_hull_qty": v["Produto_QtdGelCasco"]}
    if sheet == "FasesStandardModelos":
        if None in (v["ProdutoFase_ProdutoId"], v["ProdutoFase_FaseId"], v["ProdutoFase_Sequencia"]):
            return None
        return {"product_id": v["ProdutoFase_ProdutoId"], "phase_id": v["ProdutoFase_FaseId"], "sequence": v["ProdutoFase_Sequencia"],
                "labour_coefficient": v["ProdutoFase_Coeficiente"], "machine_coefficient": v["ProdutoFase_CoeficienteX"]}
    if sheet == "Funcionarios":
        return None if v["Funcionario_Id"] is None else {"id": v["Funcionario_Id"], "name": v["Funcionario_Nome"] or "", "is_active": v["Funcionario_Activo"] is not False}
    if sheet == "FuncionariosFasesAptos":
        if None in (v["FuncionarioFase_FuncionarioId"], v["FuncionarioFase_FaseId"]):
            return None
        return {"employee_id": v["FuncionarioFase_FuncionarioId"], "phase_id": v["FuncionarioFase_FaseId"], "qualified_since": v["FuncionarioFase_Inicio"]}
    if sheet == "OrdensFabrico":
        if v["Of_Id"] is None:
            return None
        created[v["Of_Id"]] = v["Of_DataCriacao"]
        finished, start = v["Of_DataAcabamento"], v["Of_DataCriacao"]
        return {"id": v["Of_Id"], "created_at": start, "finished_at": finished, "product_id": v["Of_ProdutoId"],
                "current_phase_id": v["Of_FaseId"], "shipped_at": v["Of_DataTransporte"], "is_open": finished is None,
                "lead_time_days": (finished - start).total_seconds() / 86400 if finished and start else None}
    if sheet == "FasesOrdemFabrico":
        if v["FaseOf_Id"] is None or v["FaseOf_OfId"] is None:
            return None
        start, end = v["FaseOf_Inicio"], v["FaseOf_Fim"]
        if start and end and end < start:
            return None
        from datetime import UTC, datetime

        event = end or start or created.get(v["FaseOf_OfId"]) or v["FaseOf_DataPrevista"] or datetime(2000, 1, 1, tzinfo=UTC)
        return {"id": v["FaseOf_Id"], "order_id": v["FaseOf_OfId"], "phase_id": v["FaseOf_FaseId"], "started_at": start, "ended_at": end,
                "planned_at": v["FaseOf_DataPrevista"], "labour_coefficient": v["FaseOf_Coeficiente"], "machine_coefficient": v["FaseOf_CoeficienteX"],
                "weight_kg": v["FaseOf_Peso"], "is_rework": bool(v["FaseOf_Retorno"]), "shift": v["FaseOf_Turno"], "sequence": v["FaseOf_Sequencia"],
                "event_time": event, "duration_seconds": (end - start).total_seconds() if start and end else None,
                "is_open": bool(start and not end), "is_done": end is not None}
    if sheet == "FuncionariosFaseOrdemFabrico":
        if None in (v["FuncionarioFaseOf_FaseOfId"], v["FuncionarioFaseOf_FuncionarioId"]):
            return None
        return {"order_phase_id": v["FuncionarioFaseOf_FaseOfId"], "employee_id": v["FuncionarioFaseOf_FuncionarioId"], "is_leader": bool(v["FuncionarioFaseOf_Chefe"])}
    if sheet == "OrdemFabricoErros":
        if v["Erro_OfId"] is None or v["OFCH_GRAVIDADE"] not in (1, 2, 3):
            return None
        digest = hashlib.sha256(repr(list(v.values())).encode()).hexdigest()
        seen[(v["Erro_OfId"], digest)] = seen.get((v["Erro_OfId"], digest), 0) + 1
        return {"order_id": v["Erro_OfId"], "description": v["Erro_Descricao"] or "", "found_phase_id": v["Erro_FaseAvaliacao"],
                "severity": v["OFCH_GRAVIDADE"], "found_order_phase_id": v["Erro_FaseOfAvaliacao"], "culprit_order_phase_id": v["Erro_FaseOfCulpada"],
                "event_time": None, "content_hash": digest, "occurrence": seen[(v["Erro_OfId"], digest)]}
    return None


if __name__ == "__main__":
    import json

    print("BENCH_RESULT " + json.dumps(naive_ingest(sys.argv[1])))
