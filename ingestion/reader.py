"""Workbook reader: structure checks, then streaming rows with every cell coerced per the contract."""

from __future__ import annotations

import functools
import hashlib
import operator
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from python_calamine import CalamineError, CalamineWorkbook

from ingestion.contract import BOOL, DATETIME, FLOAT, ID, INT, LOCAL_ZONE, SHEETS, SheetSpec

LISBON = ZoneInfo(LOCAL_ZONE)
EXCEL_EPOCH = datetime(1899, 12, 30)
MIN_YEAR, MAX_YEAR = 1900, 2100
MAX_UNCOMPRESSED_BYTES = 2 * 1024**3  # a real 40 MB export unpacks to a few hundred MB
MAX_COMPRESSION_RATIO = 300
MAX_ROWS_PER_SHEET = 5_000_000
# The contract's widest sheet has under 20 columns; calamine allocates rows x columns cells for a sheet, so one cell
# at XFD200000 in a 9 KB file asked for 100 GB and killed the process. Both the declared dimension and every cell
# reference are checked against these limits before calamine sees the file.
MAX_COLUMNS_PER_SHEET = 256
SCAN_CHUNK_BYTES = 4 * 1024 * 1024
TEXT_LIMITS = {"Produto_Nome": 200, "Fase_Nome": 200, "Funcionario_Nome": 200}
DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",  # ISO with fractional seconds: the ERP, and a datetime a rejects export wrote as text
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y",
)
_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+(?::([A-Z]+)(\d+))?"')
# A cell beyond column IV (256): three letters, or two from IW / J..Z on.
_FAR_CELL = re.compile(rb'<c r="((?:[A-Z]{3,}|[J-Z][A-Z]|I[W-Z])\d+)"')
_FAR_ROW = re.compile(rb'<(?:row|c) r="[A-Z]*(\d{7,})"')


def column_number(letters: bytes | str) -> int:
    """Spreadsheet column letters to a 1-based number (A=1, XFD=16384)."""
    number = 0
    for letter in letters.upper() if isinstance(letters, str) else letters.decode().upper():
        number = number * 26 + (ord(letter) - 64)
    return number


def _check_sheet_extent(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse a sheet whose declared dimension or any cell lies beyond the row and column limits (one streaming pass
    over the sheet's XML; nothing is allocated per cell)."""
    with archive.open(info) as handle:
        head = handle.read(4096)
        match = _DIMENSION.search(head)
        if match and match.group(1):
            columns, rows = column_number(match.group(1)), int(match.group(2))
            if columns > MAX_COLUMNS_PER_SHEET or rows > MAX_ROWS_PER_SHEET:
                raise WorkbookError(
                    f"{info.filename} declares {rows:,} rows x {columns:,} columns (limits {MAX_ROWS_PER_SHEET:,} rows, "
                    f"{MAX_COLUMNS_PER_SHEET} columns): refused")
        chunk, tail = head, b""
        while chunk:
            window = tail + chunk
            far = _FAR_CELL.search(window)
            if far:
                raise WorkbookError(f"{info.filename} has a cell at {far.group(1).decode()}, beyond column "
                                    f"{MAX_COLUMNS_PER_SHEET} (the limit): refused")
            for row in _FAR_ROW.finditer(window):
                if int(row.group(1)) > MAX_ROWS_PER_SHEET:
                    raise WorkbookError(f"{info.filename} has a row {int(row.group(1)):,}, beyond the limit of "
                                        f"{MAX_ROWS_PER_SHEET:,} rows: refused")
            tail = window[-32:]
            chunk = handle.read(SCAN_CHUNK_BYTES)


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
    kind = type(value)
    if kind is int and 0 <= value <= 9_223_372_036_854_775_807:
        return value
    if kind is float and value.is_integer() and 0 <= value <= 9.2e18:
        return int(value)
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
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer() and abs(value) <= 2_147_483_647:
        return int(value)
    if is_empty(value):
        return None
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
    if type(value) is float:
        return value
    if is_empty(value):
        return None
    if type(value) is int:
        return float(value)
    try:
        number = float(str(value).strip().replace(",", "."))
    except (TypeError, ValueError):
        raise CellError("bad_number", f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise CellError("bad_number", f"{value!r} is not a finite number")
    return number


def coerce_bool(value) -> bool | None:
    kind = type(value)
    if kind is int or kind is float:
        if value == 1:
            return True
        if value == 0:
            return False
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
    """Check the year; return naive Lisbon local time (PostgreSQL applies the zone set-wise, see pipeline/sql.py)."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise CellError("bad_date", f"year {value.year} is outside {MIN_YEAR}..{MAX_YEAR}")
    return value if value.tzinfo is None else value.astimezone(LISBON).replace(tzinfo=None)


def coerce_datetime(value) -> datetime | None:
    """Excel datetimes are naive Lisbon local time; text dates are ISO or day-first. Returns naive local time."""
    if type(value) is datetime:
        if MIN_YEAR <= value.year <= MAX_YEAR and value.tzinfo is None:
            return value
        return _aware(value)
    if is_empty(value):
        return None
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


def coerce_text(value, header: str = "") -> str | None:
    if is_empty(value):
        return None
    text = value if isinstance(value, str) else (str(int(value)) if isinstance(value, float) and value.is_integer() else str(value))
    text = text.strip().replace("\x00", "")
    limit = TEXT_LIMITS.get(header)
    if limit and len(text) > limit:
        raise CellError("value_too_long", f"{len(text)} characters, at most {limit}")
    return text


COERCERS = {ID: coerce_id, INT: coerce_int, FLOAT: coerce_float, BOOL: coerce_bool, DATETIME: coerce_datetime}


def jsonable(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, str) and len(value) > 2000:
        return value[:2000] + f"… ({len(value)} characters)"
    return value


def check_container(path: Path) -> None:
    """Refuse what is not an xlsx zip, zip bombs, and sheets wider or longer than the limits, before parsing."""
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
                    _check_sheet_extent(archive, info)
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
        self.sheet_parts: dict[str, str] = {}
        self._pending: dict[str, Future] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._prefetch_book = None
        self._heights: dict[str, int] = {}

    def check_structure(self) -> None:
        """Every sheet of the contract present (cheap); headers are checked as each sheet is read.

        A header problem found later still fails the whole run before anything is merged."""
        names = {name.strip(): name for name in self.workbook.sheet_names}
        missing = [spec.name for spec in SHEETS if spec.name not in names]
        if missing:
            raise WorkbookError(f"missing sheet(s): {', '.join(missing)}")
        self.sheet_parts = _sheet_parts(self.path)

    def _check_headers(self, spec: SheetSpec, header_row) -> None:
        headers = [normalise_header(h) for h in header_row] if header_row else []
        positions = {header: headers.index(header) for header in spec.headers if header in headers}
        absent = [h for h in spec.headers if h not in positions]
        if absent:
            near = [h for h in headers if h and h.lower() in {a.lower() for a in absent}]
            hint = f" (found {', '.join(near)}: headers are case-sensitive)" if near else ""
            if not headers:
                raise WorkbookError(f"sheet {spec.name}: empty sheet, no header row (expected {', '.join(spec.headers)})")
            raise WorkbookError(f"sheet {spec.name}: missing header(s) {', '.join(absent)}{hint}")
        self.header_positions[spec.name] = positions

    def _sheet_name(self, spec: SheetSpec) -> str:
        for name in self.workbook.sheet_names:
            if name.strip() == spec.name:
                return name
        raise WorkbookError(f"missing sheet: {spec.name}")

    def _sheet(self, spec: SheetSpec):
        name = self._sheet_name(spec)
        try:
            return self.workbook.get_sheet_by_name(name)
        except Exception as exc:  # noqa: BLE001 - a damaged sheet part
            raise WorkbookError(f"sheet {spec.name} cannot be read: {exc}") from exc

    def sheet_height(self, spec: SheetSpec) -> int:
        """Data rows of the sheet being read (known once rows() has taken the sheet; no second parse)."""
        return self._heights.get(spec.name, 0)

    def rows(self, spec: SheetSpec) -> Iterator[tuple[int, list, tuple | None]]:
        """Data rows of a sheet as (Excel row number, coerced values, error or None).

        error is (reason, column, message, original cells by header) for the first failing cell.
        This is the hot loop of ingestion (1.1 M rows): a C itemgetter picks the cells, one list
        comprehension coerces them, and a row is re-walked cell by cell only when one fails."""
        sheet = self._take_sheet(spec)
        self._heights[spec.name] = max(0, (sheet.height or 0) - 1)
        iterator = sheet.iter_rows()
        header_row = next(iterator, None)
        self._check_headers(spec, header_row)
        positions = [self.header_positions[spec.name][header] for header in spec.headers]
        coercers = [
            COERCERS.get(spec.columns[header]) or functools.partial(coerce_text, header=header) for header in spec.headers
        ]
        width = max(positions) + 1
        pick = operator.itemgetter(*positions)
        pairs = list(zip(coercers, range(len(positions)), strict=True))
        row_number = (sheet.start[0] + 1) if sheet.start else 1  # Excel row of the header
        for cells in iterator:
            row_number += 1
            if len(cells) < width:
                cells = list(cells) + [None] * (width - len(cells))
            picked = pick(cells)
            try:
                values = [coerce(picked[index]) for coerce, index in pairs]
            except CellError:
                yield row_number, *self._failed_row(spec, picked, coercers)
                continue
            if values[0] is None and all(value is None for value in values):
                continue  # blank lines at the end of exports are not rows
            yield row_number, values, None

    @staticmethod
    def _failed_row(spec: SheetSpec, picked, coercers) -> tuple[list, tuple]:
        values, error = [], None
        for header, raw, coerce in zip(spec.headers, picked, coercers, strict=True):
            try:
                values.append(coerce(raw))
            except CellError as exc:
                values.append(None)
                if error is None:
                    error = (exc.reason, header, f"{header}: {exc.message}")
        original = {header: jsonable(raw) for header, raw in zip(spec.headers, picked, strict=True)}
        return values, (*error, original)

    def prefetch(self, spec: SheetSpec) -> None:
        """Parse a sheet in a background thread (calamine releases the GIL) while the caller works on another."""
        if spec.name in self._pending:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sheet-prefetch")
            # A workbook object of its own: PyO3 objects must not be borrowed from two threads at once.
            self._prefetch_book = CalamineWorkbook.from_path(str(self.path))
        name = self._sheet_name(spec)
        self._pending[spec.name] = self._executor.submit(self._prefetch_book.get_sheet_by_name, name)

    def _take_sheet(self, spec: SheetSpec):
        future = self._pending.pop(spec.name, None)
        if future is None:
            return self._sheet(spec)
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - a damaged sheet part
            raise WorkbookError(f"sheet {spec.name} cannot be read: {exc}") from exc

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def sheet_sha256(self, spec: SheetSpec) -> str:
        """SHA-256 of what decides a sheet's cell values: its XML part, the shared strings and the styles.

        Cheap (no cell decoding). Equal hashes mean equal cells, because a sheet's strings live in the
        shared-strings part and its dates are numbers whose meaning the styles part gives."""
        part = self.sheet_parts.get(spec.name)
        if not part:
            return ""
        with zipfile.ZipFile(self.path) as archive:
            digest = hashlib.sha256()
            for name in (part, "xl/sharedStrings.xml", "xl/styles.xml"):
                if name not in archive.NameToInfo:
                    digest.update(b"-")
                    continue
                with archive.open(name) as handle:
                    for chunk in iter(lambda: handle.read(1024 * 1024), b""):  # noqa: B023 - consumed at once
                        digest.update(chunk)
        return digest.hexdigest()


def _sheet_parts(path: Path) -> dict[str, str]:
    """Map sheet name -> its XML part in the zip (workbook.xml + its relationships)."""
    import xml.etree.ElementTree as ET

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
          "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
          "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}
    try:
        with zipfile.ZipFile(path) as archive:
            workbook = ET.fromstring(archive.read("xl/workbook.xml"))
            rels = ET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ET.ParseError):
        return {}
    targets = {rel.get("Id"): rel.get("Target") for rel in rels.findall("rel:Relationship", ns)}
    parts = {}
    for sheet in workbook.findall("m:sheets/m:sheet", ns):
        target = targets.get(sheet.get(f"{{{ns['r']}}}id"), "")
        target = target.lstrip("/")
        parts[sheet.get("name", "").strip()] = target if target.startswith("xl/") else f"xl/{target}"
    return parts


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()

