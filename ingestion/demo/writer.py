"""Writing the demo workbook: columns with per-cell styles, planted rows, one streaming pass per sheet."""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from ingestion import contract
from ingestion.demo.shape import (
    AS_FLOAT,
    AS_TEXT,
    BAD_DATES,
    BAD_IDS,
    BAD_SEVERITIES,
    CHUNK_ROWS,
    DATE_DMY_TEXT_RATE,
    DATE_ISO_TEXT_RATE,
    DMY_DATE_TEXT,
    DMY_TEXT,
    ID_FLOAT_RATE,
    ID_TEXT_RATE,
    ISO_TEXT,
    NATIVE,
    NEVER,
    NULL_LITERAL_RATE,
    NULL_TEXT,
    PLANTED,
    PLANTED_PER_REASON,
)
from ingestion.inspector import is_null, parse_id


@dataclass
class Col:
    """One column: typed values, which cells are empty, and how each cell is written."""

    values: np.ndarray
    empty: np.ndarray | None = None
    style: np.ndarray | None = None
    decimals: int | None = None


@dataclass
class Planted:
    anchor: int  # written right after this valid row (-1: before all)
    reason: str
    column: str
    cells: list[Any]
    source: int = -1  # the valid row it was copied from
    k: int = 0  # its rank among the rows planted for its reason
    fresh_id: int | None = None  # the new key it carries, if any
    shift: int = 0  # end_before_start: minutes Fim is moved before Inicio


def _restyle(value: Any, code: int) -> Any:
    if value is None:
        return "NULL" if code == NULL_TEXT else None
    if code == AS_FLOAT:
        return float(value)
    if code == AS_TEXT:
        return str(value)
    if code == ISO_TEXT:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if code == DMY_TEXT:
        return value.strftime("%d/%m/%Y %H:%M")
    if code == DMY_DATE_TEXT:
        return value.strftime("%d/%m/%Y")
    return value


def _cells(col: Col, start: int, stop: int, *, styled: bool = True) -> list[Any]:
    values = col.values[start:stop]
    if values.dtype.kind == "f" and col.decimals is not None:
        values = np.round(values, col.decimals)
    cells = values.astype(object)  # int64 -> int, datetime64 -> datetime, float64 -> float
    if col.empty is not None:
        cells[col.empty[start:stop]] = None
    if styled and col.style is not None:
        style = col.style[start:stop]
        for i in np.flatnonzero(style):
            cells[i] = _restyle(cells[i], int(style[i]))
    return cells.tolist()


def _id_style(rng, n: int, empty: np.ndarray | None = None) -> np.ndarray:
    r = rng.random(n)
    style = np.where(r < ID_FLOAT_RATE, AS_FLOAT, np.where(r < ID_FLOAT_RATE + ID_TEXT_RATE, AS_TEXT, NATIVE))
    if empty is not None:
        style[empty] = NATIVE
    return style.astype(np.int8)


def _date_style(rng, n: int, empty: np.ndarray | None, *, date_only: bool = False, nulls: bool = False) -> np.ndarray:
    r = rng.random(n)
    dmy = DMY_DATE_TEXT if date_only else DMY_TEXT
    style = np.where(r < DATE_ISO_TEXT_RATE, ISO_TEXT, np.where(r < DATE_ISO_TEXT_RATE + DATE_DMY_TEXT_RATE, dmy, NATIVE))
    if empty is not None:
        style = np.where(empty, np.where(nulls & (rng.random(n) < NULL_LITERAL_RATE), NULL_TEXT, NATIVE), style)
    return style.astype(np.int8)


def _null_style(rng, empty: np.ndarray) -> np.ndarray:
    return np.where(empty & (rng.random(len(empty)) < NULL_LITERAL_RATE), NULL_TEXT, NATIVE).astype(np.int8)


def _minutes(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.int64).copy()
    bad = (out < 0) | (out >= NEVER)
    result = out.astype("datetime64[m]")
    result[bad] = np.datetime64("NaT")
    return result


class _Watch:
    """What the writer saw in one column: distinct ids and filled cells, for the manifest's rates."""

    def __init__(self, ids: bool) -> None:
        self.collect_ids = ids
        self.ids: set[int] = set()
        self.filled = 0
        self.rows = 0

    def update(self, cells: list[Any]) -> None:
        self.rows += len(cells)
        self.filled += sum(1 for v in cells if not is_null(v))
        if self.collect_ids:
            self.ids.update(p for p in map(parse_id, cells) if type(p) is int)


def _write_sheet(wb, spec: contract.SheetSpec, cols: dict[str, Col], planted: list[Planted],
                 watch: dict[str, _Watch]) -> dict[str, Any]:
    ws = wb.create_sheet(spec.name)
    headers = spec.headers
    ws.append(headers)
    n_valid = len(cols[headers[0]].values)
    planted = sorted(planted, key=lambda p: p.anchor)
    rejects: dict[str, list[int]] = {}
    details = []
    excel_row = 1
    next_plant = 0

    def write_planted(anchor: int) -> None:
        nonlocal excel_row, next_plant
        while next_plant < len(planted) and planted[next_plant].anchor == anchor:
            plant = planted[next_plant]
            ws.append(plant.cells)
            excel_row += 1
            rejects.setdefault(plant.reason, []).append(excel_row)
            details.append({"row": excel_row, "reason": plant.reason, "column": plant.column})
            for j, header in enumerate(headers):
                if header in watch:
                    watch[header].update([plant.cells[j]])
            next_plant += 1

    write_planted(-1)
    for start in range(0, n_valid, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n_valid)
        columns = [_cells(cols[h], start, stop) for h in headers]
        for header, cells in zip(headers, columns, strict=True):
            if header in watch:
                watch[header].update(cells)
        anchors = {p.anchor for p in planted[next_plant:] if start <= p.anchor < stop}
        for offset, row in enumerate(zip(*columns, strict=True)):
            ws.append(row)
            excel_row += 1
            if start + offset in anchors:
                write_planted(start + offset)
    return {
        "rows": excel_row - 1,
        "planted_rejects": {reason: rejects.get(reason, []) for reason in PLANTED.get(spec.name, ())},
        "planted_reject_details": details,
    }


class _StampedZip(zipfile.ZipFile):
    """A zip whose entries all carry one timestamp (the as-of date), not the wall clock."""

    def __init__(self, path: Path, stamp: datetime) -> None:
        super().__init__(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self.stamp = (max(stamp.year, 1980), stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)

    def _info(self, arcname: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(arcname, date_time=self.stamp)
        info.compress_type = self.compression
        info.external_attr = 0o600 << 16
        return info

    def writestr(self, zinfo_or_arcname, data, *args, **kwargs):
        if not isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            zinfo_or_arcname = self._info(zinfo_or_arcname)
        return super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename, arcname=None, *args, **kwargs):
        info = self._info(arcname or Path(filename).name)
        info.file_size = Path(filename).stat().st_size  # lets the writer choose zip64 as ZipFile.write does
        with open(filename, "rb") as source, self.open(info, "w") as target:
            shutil.copyfileobj(source, target, 1 << 20)


def _save(wb: Workbook, out_path: Path, as_of: datetime) -> None:
    """Save with the document properties and zip timestamps of the as-of date: same seed, same bytes."""
    wb.properties.created = wb.properties.modified = as_of.replace(microsecond=0)
    archive = _StampedZip(out_path, as_of)
    ExcelWriter(wb, archive).save()  # closes the archive


def _native_row(cols: dict[str, Col], headers: list[str], i: int) -> list[Any]:
    return [_cells(cols[h], i, i + 1, styled=False)[0] for h in headers]


def _plant(rng, spec: contract.SheetSpec, cols: dict[str, Col], sources: dict[str, np.ndarray],
           fresh_id: int | None) -> list[Planted]:
    """PLANTED_PER_REASON rows per reason, each wrong in exactly one way, none referenced by any other row."""
    headers = spec.headers
    n_valid = len(cols[headers[0]].values)
    planted = []
    next_id = fresh_id
    for reason in PLANTED[spec.name]:
        pool = sources.get(reason, sources["any"])
        picks = rng.choice(pool, size=PLANTED_PER_REASON, replace=False)
        for k, i in enumerate(picks):
            anchor = int(rng.integers(-1, n_valid))
            fresh = None
            if reason == "duplicate_key":
                anchor = int(min(n_valid - 1, i + rng.integers(1, 500)))  # after the row it repeats
            elif spec.name in (contract.ORDERS.name, contract.ORDER_PHASES.name) and reason != "missing_key":
                fresh = next_id  # a fresh row nobody points at
                next_id += 1
            shift = int(rng.integers(30, 600)) if reason == "end_before_start" else 0
            plant = Planted(anchor, reason, "", [], source=int(i), k=k, fresh_id=fresh, shift=shift)
            _fill_planted(spec, cols, plant)
            planted.append(plant)
    return planted


def _fill_planted(spec: contract.SheetSpec, cols: dict[str, Col], plant: Planted) -> None:
    """The planted row's cells: a copy of its source row, wrong in the one way its reason says."""
    headers = spec.headers
    cells = _native_row(cols, headers, plant.source)
    reason, k = plant.reason, plant.k
    key = spec.key[0] if spec.key else None
    column = ""
    if reason == "duplicate_key":
        # A later row repeating the key (written in another id form); the first one is kept.
        j = headers.index(key)
        cells[j] = float(cells[j]) if k % 2 == 0 else str(cells[j])
        column = key
        _mutate_duplicate(spec, headers, cells)
    elif plant.fresh_id is not None:
        cells[headers.index(key)] = plant.fresh_id
    if reason == "missing_key":
        column = key
        cells[headers.index(key)] = None
    elif reason == "bad_id":
        column = {
            contract.ORDERS.name: "Of_FaseId",
            contract.ORDER_PHASES.name: "FaseOf_FaseId",
            contract.ASSIGNMENTS.name: "FuncionarioFaseOf_FuncionarioId",
            contract.ERRORS.name: "Erro_FaseAvaliacao",
        }[spec.name]
        cells[headers.index(column)] = BAD_IDS[k]
    elif reason == "bad_date":
        column = "Of_DataCriacao" if spec.name == contract.ORDERS.name else "FaseOf_Inicio"
        cells[headers.index(column)] = BAD_DATES[k]
        if spec.name == contract.ORDER_PHASES.name:
            cells[headers.index("FaseOf_Fim")] = None  # no end to compare: only the date is wrong
    elif reason == "end_before_start":
        column = "FaseOf_Fim"
        begin = cells[headers.index("FaseOf_Inicio")]
        cells[headers.index("FaseOf_Fim")] = begin - timedelta(minutes=plant.shift)
    elif reason == "bad_severity":
        column = "OFCH_GRAVIDADE"
        cells[headers.index(column)] = BAD_SEVERITIES[k]
    plant.column, plant.cells = column, cells


def _mutate_duplicate(spec: contract.SheetSpec, headers: list[str], cells: list[Any]) -> None:
    """Make the repeated row differ outside the key, so keeping the wrong one would show."""
    if spec.name == contract.ORDERS.name:
        cells[headers.index("Of_DataTransporte")] = None
    elif spec.name == contract.ORDER_PHASES.name:
        j = headers.index("FaseOf_Coeficiente")
        cells[j] = round((cells[j] or 0.0) + 0.5, 3)
    elif spec.name == contract.ASSIGNMENTS.name:
        j = headers.index("FuncionarioFaseOf_Chefe")
        cells[j] = 1 - cells[j]
