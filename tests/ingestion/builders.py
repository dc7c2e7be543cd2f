"""Small hand-made workbooks for ingestion tests (the generator covers scale; these cover edge cases)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

from ingestion.contract import SHEETS


def base_rows() -> dict[str, list[list]]:
    """A tiny consistent factory: 3 phases, 2 products, 3 orders, phases, assignments, errors."""
    return {
        "Fases": [[1, "Moldação", 1, 1, 0], [2, "Gelcoat", 2, 1, 0], [3, "Desmoldagem", 3, 1, 1]],
        "Modelos": [[10, "K1 Sprint", 14.0, 12.0, 1.5, 2.0], [11, "C2 Tour", 30.0, 27.0, 2.0, 3.0]],
        "FasesStandardModelos": [[10, 1, 1, 1.0, 0.5], [10, 2, 2, 1.0, 0.5], [10, 3, 3, 1.0, 0.0], [11, 1, 1, 2.0, 1.0]],
        "Funcionarios": [[100, "Ana Silva", 1], [101, "Rui Costa", 1]],
        "FuncionariosFasesAptos": [[100, 1, datetime(2020, 1, 1)], [101, 2, datetime(2021, 6, 1)]],
        "OrdensFabrico": [
            [1000, datetime(2024, 1, 2, 8), datetime(2024, 1, 9, 17), 10, 3, None],
            [1001, "2024-02-01 09:00:00", None, 999, 2, "NULL"],
            [1002, datetime(2024, 3, 1, 8), None, 11, 1, None],
        ],
        "FasesOrdemFabrico": [
            [5000, 1000, datetime(2024, 1, 2, 9), datetime(2024, 1, 3, 9), None, 1, 0, 1, 12, 0, 1, 1],
            [5001, 1000, datetime(2024, 1, 3, 9), datetime(2024, 1, 5, 9), None, 1, 0, 2, 12, 0, 1, 2],
            [5002, "1001", datetime(2024, 2, 1, 10), None, None, 1, 0, 1, 12, 0, 2, 1],
            [5003.0, 1002, None, None, datetime(2024, 3, 10), 1, 0, 1, 30, 0, None, 1],
        ],
        "FuncionariosFaseOrdemFabrico": [[5000, 100, 1], [5001, 101, 0], [777, 101, 0]],
        "OrdemFabricoErros": [
            ["risco", 1000, 3, 2, 5001, None],
            ["risco", 1000, 3, 2, 5001, None],
            ["bolha", 1000, 3, 3, 5001, 5000],
        ],
    }


def write_workbook(path: Path, rows: dict[str, list[list]] | None = None, *, headers: dict[str, list[str]] | None = None,
                   skip_sheets: tuple[str, ...] = ()) -> Path:
    rows = rows if rows is not None else base_rows()
    workbook = Workbook()
    workbook.remove(workbook.active)
    for spec in SHEETS:
        if spec.name in skip_sheets:
            continue
        sheet = workbook.create_sheet(spec.name)
        sheet.append((headers or {}).get(spec.name, spec.headers))
        for row in rows.get(spec.name, []):
            sheet.append(row)
    workbook.save(path)
    return path
