"""Workbook reader: structure checks, then streaming rows with every cell coerced per the contract."""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from python_calamine import CalamineError, CalamineWorkbook

from ingestion.contract import BOOL, DATETIME, FLOAT, ID, INT, SHEETS, TEXT, SheetSpec

LISBON = ZoneInfo("Europe/Lisbon")
EXCEL_EPOCH = datetime(1899, 12, 30)
MIN_YEAR, MAX_YEAR = 1900, 2100
MAX_UNCOMPRESSED_BYTES = 2 * 1024**3  # a real 40 MB export unpacks to a few hundred MB
MAX_COMPRESSION_RATIO = 300
MAX_ROWS_PER_SHEET = 5_000_000
TEXT_LIMITS = {"Produto_Nome": 200, "Fase_Nome": 200, "Funcionario_Nome": 200}
DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y",
)
_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+:[A-Z]+(\d+)"')


class WorkbookError(Exception):
    """The file cannot be ingested at all (not a workbook, missing sheet or header, too big)."""


class CellError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def normalise_header(value) -> str:
    return str(value).strip() if value is not None else ""


def is_empty(value) -> bool:
    return value is None or value == "" or (isinstance(value, str) and (not value.strip() or value.strip().upper() == "NULL"))


def coerce_id(value) -> int | None:
    if is_empty(value):
        return None
    if type(value) is int:
        result = value
    elif type(value) is float:
        if not value.is_integer():
            raise CellError("bad_id", f"{value!r} is not a whole number")
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise CellError("bad_id", f"{value!r} is not an id") from None
            if not number.is_integer():
                raise CellError("bad_id", f"{value!r} is not a whole number") from None
            result = int(number)
    elif isinstance(value, bool):
        raise CellError("bad_id", f"{value!r} is not an id")
    else:
        raise CellError("bad_id", f"{value!r} is not an id")
    if result < 0:
        raise CellError("bad_id", f"negative id {result}")
    if result > 9_223_372_036_854_775_807:
        raise CellError("bad_id", f"id {result} is out of range")
    return result


def coerce_int(value) -> int | None:
    if is_empty(value):
        return None
    if type(value) is int:
        return value
    if type(value) is bool:
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CellError("bad_number", f"{value!r} is not a number") from None
    if not number.is_integer() or abs(number) > 2_147_483_647:
        raise CellError("bad_number", f"{value!r} is not a whole number")
    return int(number)


def coerce_float(value) -> float | None:
    if is_empty(value):
        return None
    if type(value) is float or type(value) is int:
        return float(value)
    try:
        number = float(str(value).strip().replace(",", "."))
    except (TypeError, ValueError):
        raise CellError("bad_number", f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise CellError("bad_number", f"{value!r} is not a finite number")
    return number


def coerce_bool(value) -> bool | None:
    if is_empty(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
        raise CellError("bad_number", f"{value!r} is not 0 or 1")
    text = str(value).strip().lower()
    if text in {"1", "1.0", "true", "sim", "s", "yes"}:
        return True
    if text in {"0", "0.0", "false", "nao", "não", "n", "no"}:
        return False
    raise CellError("bad_number", f"{value!r} is not 0 or 1")


def _aware(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise CellError("bad_date", f"year {value.year} is outside {MIN_YEAR}..{MAX_YEAR}")
    return value.replace(tzinfo=LISBON) if value.tzinfo is None else value


def coerce_datetime(value) -> datetime | None:
    """Excel datetimes are naive Lisbon local time; text dates are ISO or day-first."""
    if is_empty(value):
        return None
    if type(value) is datetime:
        return _aware(value)
    if type(value) is date:
        return _aware(datetime.combine(value, time()))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 1 <= value <= 73050:  # Excel serial days within 1900..2100
            raise CellError("bad_date", f"{value!r} is not a date")
        return _aware(EXCEL_EPOCH + timedelta(days=float(value)))
    if isinstance(value, timedelta | time):
        raise CellError("bad_date", f"{value!r} is a duration, not a date")
    text = str(value).strip()
    for fmt in DATE_FORMATS:
        try:
            return _aware(datetime.strptime(text, fmt))
        except ValueError:
            continue
    raise CellError("bad_date", f"{text[:60]!r} is not a date")


def coerce_text(value, header: str) -> str | None:
    if is_empty(value):
        return None
    text = value if isinstance(value, str) else (str(int(value)) if isinstance(value, float) and value.is_integer() else str(value))
    text = text.strip().replace("\x00", "")
    limit = TEXT_LIMITS.get(header)
    if limit and len(text) > limit:
        raise CellError("value_too_long", f"{len(text)} characters, at most {limit}")
    return text


COERCERS = {ID: coerce_id, INT: coerce_int, FLOAT: coerce_float, BOOL: coerce_bool, DATETIME: coerce_datetime}


@dataclass
class CoercedRow:
    row_number: int
    values: list
    error_reason: str | None = None
    error_column: str | None = None
    error_message: str | None = None
    raw: dict | None = None


def jsonable(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, str) and len(value) > 2000:
        return value[:2000] + f"… ({len(value)} characters)"
    return value


def check_container(path: Path) -> None:
    """Refuse what is not an xlsx zip, and zip bombs / absurd dimension tags, before parsing."""
    if not path.exists():
        raise WorkbookError(f"file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise WorkbookError(f"{path.name} is not an Excel workbook (.xlsx): not a zip container")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            packed = sum(info.compress_size for info in infos) or 1
            if total > MAX_UNCOMPRESSED_BYTES or total / packed > MAX_COMPRESSION_RATIO and total > 50 * 1024**2:
                raise WorkbookError(
                    f"{path.name} unpacks to {total / 1024**2:.0f} MB (ratio {total / packed:.0f}:1): refused as a possible zip bomb"
                )
            for info in infos:
                if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                    with archive.open(info) as handle:
                        head = handle.read(4096)
                    match = _DIMENSION.search(head)
                    if match and int(match.group(1)) > MAX_ROWS_PER_SHEET:
                        raise WorkbookError(
                            f"{info.filename} declares {int(match.group(1)):,} rows (limit {MAX_ROWS_PER_SHEET:,}): refused"
                        )
            if "xl/workbook.xml" not in {info.filename for info in infos}:
                raise WorkbookError(f"{path.name} is a zip file but not an Excel workbook (no xl/workbook.xml)")
    except zipfile.BadZipFile as exc:
        raise WorkbookError(f"{path.name} is a damaged or truncated workbook: {exc}") from exc


class WorkbookReader:
    """Opens a workbook, checks the contract's sheets and headers, and streams coerced rows."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        check_container(self.path)
        try:
            self.workbook = CalamineWorkbook.from_path(str(self.path))
        except CalamineError as exc:
            raise WorkbookError(f"{self.path.name} cannot be read as a workbook: {exc}") from exc
        except Exception as exc:  # calamine raises its own error types for damaged parts
            raise WorkbookError(f"{self.path.name} cannot be read as a workbook: {type(exc).__name__}: {exc}") from exc
        self.header_positions: dict[str, dict[str, int]] = {}

    def check_structure(self) -> None:
        """Every sheet of the contract present with every header: else the run fails naming what is missing."""
        names = {name.strip(): name for name in self.workbook.sheet_names}
        missing = [spec.name for spec in SHEETS if spec.name not in names]
        if missing:
            raise WorkbookError(f"missing sheet(s): {', '.join(missing)}")
        problems = []
        for spec in SHEETS:
            sheet = self._sheet(spec)
            header_row = next(sheet.iter_rows(), None)
            headers = [normalise_header(h) for h in header_row] if header_row else []
            positions = {}
            for header in spec.headers:
                if header in headers:
                    positions[header] = headers.index(header)
            absent = [h for h in spec.headers if h not in positions]
            if absent:
                near = [h for h in headers if h and h.lower() in {a.lower() for a in absent}]
                hint = f" (found {', '.join(near)}: headers are case-sensitive)" if near else ""
                problems.append(f"sheet {spec.name}: missing header(s) {', '.join(absent)}{hint}")
            self.header_positions[spec.name] = positions
        if problems:
            raise WorkbookError("; ".join(problems))

    def _sheet(self, spec: SheetSpec):
        for name in self.workbook.sheet_names:
            if name.strip() == spec.name:
                try:
                    return self.workbook.get_sheet_by_name(name)
                except Exception as exc:  # noqa: BLE001 - a damaged sheet part
                    raise WorkbookError(f"sheet {spec.name} cannot be read: {exc}") from exc
        raise WorkbookError(f"missing sheet: {spec.name}")

    def sheet_height(self, spec: SheetSpec) -> int:
        sheet = self._sheet(spec)
        return max(0, (sheet.height or 0) - 1)

    def rows(self, spec: SheetSpec, digest: hashlib._Hash | None = None) -> Iterator[CoercedRow]:
        """Data rows of a sheet, coerced; the first failing cell marks the row as a reject."""
        sheet = self._sheet(spec)
        positions = self.header_positions[spec.name]
        headers = spec.headers
        plan = [(header, positions[header], COERCERS.get(spec.columns[header])) for header in headers]
        first_row = (sheet.start[0] + 1) if sheet.start else 1  # Excel row of the header
        row_number = first_row
        iterator = sheet.iter_rows()
        next(iterator, None)
        for cells in iterator:
            row_number += 1
            width = len(cells)
            picked = [cells[pos] if pos < width else None for _, pos, _ in plan]
            if digest is not None:
                digest.update(repr(picked).encode())
            if all(is_empty(v) for v in picked):
                continue  # blank lines at the end of exports are not rows
            values = []
            error = None
            for (header, _, coercer), raw in zip(plan, picked, strict=True):
                try:
                    values.append(coercer(raw) if coercer else coerce_text(raw, header))
                except CellError as exc:
                    values.append(None)
                    if error is None:
                        error = (exc.reason, header, f"{header}: {exc.message}")
            if error is None:
                yield CoercedRow(row_number, values)
            else:
                raw_map = {header: jsonable(raw) for (header, _, _), raw in zip(plan, picked, strict=True)}
                yield CoercedRow(row_number, values, error[0], error[1], error[2], raw_map)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


TEXT_KIND = TEXT
