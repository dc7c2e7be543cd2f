"""Workbook inspector: one streaming pass per sheet giving a data dictionary, a profile and reference match rates."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from python_calamine import CalamineWorkbook

from ingestion import contract

CHUNK_ROWS = 20_000
EXAMPLES = 5
ORPHAN_SAMPLE = 20

# An id written as text may carry a zero fraction ("123.0") but nothing else.
_ID_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")


class WorkbookUnreadable(ValueError):
    """The file is not a workbook that calamine can open."""


class _Bad:
    """Marker of a cell that holds something which is not an id."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD_ID"


BAD_ID = _Bad()


def is_null(value: Any) -> bool:
    """True for an empty cell: None, blank text or the literal text NULL."""
    if value is None:
        return True
    if type(value) is str:
        stripped = value.strip()
        return not stripped or stripped.upper() == "NULL"
    return False


def parse_id(value: Any) -> int | None | _Bad:
    """123, 123.0 and "123" are the same id; None for an empty cell, BAD_ID for anything else."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        return int(value) if value.is_integer() else BAD_ID
    if kind is str:
        text = value.strip()
        if not text or text.upper() == "NULL":
            return None
        if _ID_TEXT.fullmatch(text):
            return int(float(text)) if "." in text else int(text)
        return BAD_ID
    if value is None:
        return None
    return BAD_ID  # bool, datetime, ...: never an id


def normalise_id(value: Any) -> int | None:
    """The id a cell holds (None when empty); ValueError when the cell is not an id."""
    parsed = parse_id(value)
    if parsed is BAD_ID:
        raise ValueError(f"not an id: {value!r}")
    return parsed  # type: ignore[return-value]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


class _ColumnStats:
    """Accumulates the figures of one column chunk by chunk."""

    def __init__(self, header: str, index: int, kind: str | None, *, count_ids: bool, personal: bool = False) -> None:
        self.header = header
        self.index = index
        self.kind = kind
        self.personal = personal  # personal data: counted, never sampled or ranged
        self.rows = 0
        self.types: Counter[str] = Counter()
        self.distinct: set[Any] = set()
        self.id_counts: Counter[int] | None = Counter() if count_ids else None
        self.bad_ids: Counter[str] = Counter()
        self.examples: list[Any] = []
        self.num_min: float | None = None
        self.num_max: float | None = None
        self.dt_min: datetime | None = None
        self.dt_max: datetime | None = None
        self.text_min: str | None = None
        self.text_max: str | None = None
        self.text_len_max = 0
        self.id_min: int | None = None
        self.id_max: int | None = None

    def consume(self, values: tuple[Any, ...]) -> None:
        self.rows += len(values)
        by_type = Counter(map(type, values))
        nonnull: list[Any] = []

        floats = [v for v in values if type(v) is float] if by_type.get(float) else []
        if floats:
            whole = sum(map(float.is_integer, floats))
            self.types["int"] += whole
            if len(floats) - whole:
                self.types["float"] += len(floats) - whole
        ints = [v for v in values if type(v) is int] if by_type.get(int) else []
        if ints:
            self.types["int"] += len(ints)
        numbers = floats + ints
        if numbers:
            low, high = min(numbers), max(numbers)
            self.num_min = low if self.num_min is None else min(self.num_min, low)
            self.num_max = high if self.num_max is None else max(self.num_max, high)
            nonnull.extend(numbers)

        if by_type.get(bool):
            bools = [v for v in values if type(v) is bool]
            self.types["bool"] += len(bools)
            nonnull.extend(bools)

        if by_type.get(datetime) or by_type.get(date):
            # Date-only cells compare as midnight so that min/max stay one type.
            dts = [
                v if type(v) is datetime else datetime.combine(v, time())
                for v in values
                if type(v) is datetime or type(v) is date
            ]
            self.types["datetime"] += len(dts)
            low, high = min(dts), max(dts)
            self.dt_min = low if self.dt_min is None else min(self.dt_min, low)
            self.dt_max = high if self.dt_max is None else max(self.dt_max, high)
            nonnull.extend(dts)
        for other, name in ((time, "time"), (timedelta, "duration")):
            if by_type.get(other):
                found = [v for v in values if type(v) is other]
                self.types[name] += len(found)
                nonnull.extend(found)

        if by_type.get(str):
            stripped = [v.strip() for v in values if type(v) is str]
            empties = stripped.count("")
            texts = [s for s in stripped if s and s.upper() != "NULL"]
            nulls = len(stripped) - empties - len(texts)
            if empties:
                self.types["empty"] += empties
            if nulls:
                self.types["NULL"] += nulls
            if texts:
                self.types["text"] += len(texts)
                low, high = min(texts), max(texts)
                self.text_min = low if self.text_min is None else min(self.text_min, low)
                self.text_max = high if self.text_max is None else max(self.text_max, high)
                self.text_len_max = max(self.text_len_max, max(map(len, texts)))
                nonnull.extend(texts)
        if by_type.get(type(None)):
            self.types["empty"] += by_type[type(None)]

        if self.kind == contract.ID:
            self._consume_ids(values)
            return
        self.distinct.update(nonnull)
        if len(self.examples) < EXAMPLES and not self.personal:
            for value in nonnull:
                if value not in self.examples:
                    self.examples.append(value)
                    if len(self.examples) >= EXAMPLES:
                        break

    def _consume_ids(self, values: tuple[Any, ...]) -> None:
        """Ids are counted, ranged and sampled as whole numbers, whatever form the cell had."""
        parsed = list(map(parse_id, values))
        valid = [p for p in parsed if type(p) is int]
        if len(valid) + parsed.count(None) < len(parsed):
            self.bad_ids.update(str(v).strip() for v, p in zip(values, parsed, strict=True) if p is BAD_ID)
        if not valid:
            return
        if self.id_counts is not None:
            self.id_counts.update(valid)
        else:
            self.distinct.update(valid)
        low, high = min(valid), max(valid)
        self.id_min = low if self.id_min is None else min(self.id_min, low)
        self.id_max = high if self.id_max is None else max(self.id_max, high)
        if len(self.examples) < EXAMPLES:
            for value in valid:
                if value not in self.examples:
                    self.examples.append(value)
                    if len(self.examples) >= EXAMPLES:
                        break

    def id_values(self) -> set[int] | Counter[int]:
        return self.id_counts if self.id_counts is not None else self.distinct

    def result(self) -> dict[str, Any]:
        nulls = self.types.get("empty", 0) + self.types.get("NULL", 0)
        distinct = len(self.id_counts) if self.id_counts is not None else len(self.distinct)
        distinct += len(self.bad_ids)
        # min/max follow the column's main kind of value, so a text date in a date column does not win.
        kind_rank = [
            (self.types.get("datetime", 0), self.dt_min, self.dt_max),
            (self.types.get("int", 0) + self.types.get("float", 0), self.num_min, self.num_max),
            (self.types.get("text", 0), self.text_min, self.text_max),
        ]
        count, low, high = max(kind_rank, key=lambda item: item[0])
        if not count:
            low = high = None
        if self.kind == contract.ID:
            low, high = self.id_min, self.id_max
        profile = {
            "header": self.header,
            "index": self.index,
            "contract_kind": self.kind,
            "rows": self.rows,
            "types": dict(sorted(self.types.items())),
            "nulls": nulls,
            "filled": self.rows - nulls,
            "null_rate": round(nulls / self.rows, 6) if self.rows else None,
            "distinct": distinct,
            "min": _json_value(low),
            "max": _json_value(high),
            "numeric_range": [self.num_min, self.num_max] if self.num_min is not None else None,
            "datetime_range": [_json_value(self.dt_min), _json_value(self.dt_max)] if self.dt_min else None,
            "text_length_max": self.text_len_max or None,
            "examples": [_json_value(v) for v in self.examples],
        }
        if self.kind == contract.ID:
            profile["unparseable_ids"] = sum(self.bad_ids.values())
            profile["unparseable_examples"] = sorted(self.bad_ids)[:EXAMPLES]
        if self.personal:
            redact_column(profile)
        return profile


# The figures of a column that carry its values; a personal column keeps only its counts.
_VALUE_FIELDS = ("min", "max", "numeric_range", "datetime_range", "text_length_max")
_VALUE_LISTS = ("examples", "unparseable_examples", "top_values")


def redact_column(column: dict[str, Any]) -> dict[str, Any]:
    """Drop every value of a personal column from its profile, in place: counts (filled, distinct) stay."""
    for name in _VALUE_FIELDS:
        if name in column:
            column[name] = None
    for name in _VALUE_LISTS:
        if name in column:
            column[name] = []
    column["personal"] = True
    return column


def redact_profile(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """A workbook profile without the values of personal columns (also for profiles stored before redaction)."""
    if not profile:
        return profile
    for sheet_name, sheet in (profile.get("sheets") or {}).items():
        for header, column in (sheet.get("columns") or {}).items():
            if contract.is_personal(sheet_name, header):
                redact_column(column)
    return profile


def _headers(raw: list[Any]) -> list[str]:
    headers = []
    for position, value in enumerate(raw):
        text = "" if value is None else str(value).strip()
        headers.append(text or f"(column {position + 1})")
    return headers


def _profile_sheet(sheet, spec: contract.SheetSpec | None, id_sources: set[str]) -> tuple[dict, dict]:
    """Profile one sheet in one pass; also returns the id sets/counters the references need."""
    rows = sheet.iter_rows()
    first = next(rows, None)
    headers = _headers(first) if first is not None else []
    kinds = spec.columns if spec else {}
    columns = [
        _ColumnStats(name, i, kinds.get(name), count_ids=name in id_sources,
                     personal=bool(spec and name in spec.personal))
        for i, name in enumerate(headers)
    ]
    key_positions = [headers.index(k) for k in spec.key if k in headers] if spec and spec.key else []
    key_complete = bool(spec and spec.key and len(key_positions) == len(spec.key))
    seen_keys: set[Any] = set()
    duplicate_keys = missing_keys = 0
    total = 0
    width = len(headers)
    while True:
        chunk = list(islice(rows, CHUNK_ROWS))
        if not chunk:
            break
        total += len(chunk)
        if width:
            # calamine gives every row the sheet's width; pad defensively for other shapes.
            if any(len(r) != width for r in chunk):
                chunk = [(list(r) + [""] * width)[:width] for r in chunk]
            for stats, values in zip(columns, zip(*chunk, strict=True), strict=True):
                stats.consume(values)
        if key_complete:
            key_kinds = [kinds[k] for k in spec.key]
            for row in chunk:
                key = tuple(
                    parse_id(row[p]) if kind == contract.ID else (None if is_null(row[p]) else row[p])
                    for kind, p in zip(key_kinds, key_positions, strict=True)
                )
                if any(part is None for part in key):
                    missing_keys += 1
                elif any(part is BAD_ID for part in key):
                    continue
                elif key in seen_keys:
                    duplicate_keys += 1
                else:
                    seen_keys.add(key)
    profile = {
        "rows": total,
        "headers": headers,
        "columns": {stats.header: stats.result() for stats in columns},
    }
    if spec:
        profile["key"] = {
            "columns": list(spec.key),
            "missing": missing_keys if key_complete else None,
            "duplicates": duplicate_keys if key_complete else None,
        }
    ids = {stats.header: stats.id_values() for stats in columns if stats.kind == contract.ID}
    return profile, ids


def _relationship(source, target, ids: dict) -> dict[str, Any]:
    src_sheet, src_col, tgt_sheet, tgt_col = source + target
    entry: dict[str, Any] = {
        "source": f"{src_sheet}.{src_col}",
        "target": f"{tgt_sheet}.{tgt_col}",
        "contract_rate": contract.REAL_MATCH_RATES.get((src_sheet, src_col)),
    }
    src = ids.get(src_sheet, {}).get(src_col)
    tgt = ids.get(tgt_sheet, {}).get(tgt_col)
    if src is None or tgt is None:
        missing = []
        if src is None:
            missing.append(entry["source"])
        if tgt is None:
            missing.append(entry["target"])
        entry.update(status="missing", missing=missing, match_rate=None)
        return entry
    matched = [v for v in src if v in tgt]
    orphans = sorted(v for v in src if v not in tgt)
    rows_with_value = sum(src.values())
    orphan_rows = sum(src[v] for v in orphans)
    entry.update(
        status="ok",
        distinct_values=len(src),
        matched_distinct=len(matched),
        match_rate=round(len(matched) / len(src), 6) if src else None,
        rows_with_value=rows_with_value,
        matched_rows=rows_with_value - orphan_rows,
        row_match_rate=round((rows_with_value - orphan_rows) / rows_with_value, 6) if rows_with_value else None,
        orphan_distinct=len(orphans),
        orphan_rows=orphan_rows,
        orphan_sample=orphans[:ORPHAN_SAMPLE],
    )
    return entry


def profile_workbook(path: str | Path) -> dict[str, Any]:
    """Profile every sheet of a workbook and measure every contract reference; JSON-serialisable."""
    path = Path(path)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own types for every unreadable format
        raise WorkbookUnreadable(f"{path.name} is not a readable workbook: {exc}") from exc
    id_sources = {}
    for src_sheet, src_col, _tgt_sheet, _tgt_col in contract.REFERENCES:
        id_sources.setdefault(src_sheet, set()).add(src_col)
    sheets: dict[str, Any] = {}
    ids: dict[str, dict] = {}
    try:
        names = list(workbook.sheet_names)
        for name in names:
            spec = contract.SHEETS_BY_NAME.get(name)
            sheets[name], ids[name] = _profile_sheet(
                workbook.get_sheet_by_name(name), spec, id_sources.get(name, set())
            )
    finally:
        workbook.close()
    missing_headers = {}
    extra_columns = {}
    for spec in contract.SHEETS:
        if spec.name not in sheets:
            continue
        present = sheets[spec.name]["headers"]
        absent = [h for h in spec.headers if h not in present]
        extra = [h for h in present if h not in spec.columns]
        if absent:
            missing_headers[spec.name] = absent
        if extra:
            extra_columns[spec.name] = extra
    relationships = [
        _relationship((s, c), (ts, tc), ids) for s, c, ts, tc in contract.REFERENCES
    ]
    return {
        "workbook": path.name,
        "file_size": path.stat().st_size,
        "sheets": sheets,
        "relationships": relationships,
        "missing_sheets": [spec.name for spec in contract.SHEETS if spec.name not in sheets],
        "missing_headers": missing_headers,
        "extra_sheets": [name for name in sheets if name not in contract.SHEETS_BY_NAME],
        "extra_columns": extra_columns,
    }


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # calamine reads every number as float; 12 reads better than 12.0
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def render_dictionary(profile: dict[str, Any]) -> str:
    """The data dictionary as Markdown: structure problems first, then one table per sheet."""
    lines = [f"# Data dictionary: `{profile['workbook']}`", ""]
    lines.append("## Structure")
    lines.append("")
    lines.append(f"- Missing sheets: {', '.join(profile['missing_sheets']) or 'none'}")
    if profile["missing_headers"]:
        for sheet, headers in profile["missing_headers"].items():
            lines.append(f"- Missing headers in `{sheet}`: {', '.join(headers)}")
    else:
        lines.append("- Missing headers: none")
    lines.append(f"- Extra sheets (not in the contract): {', '.join(profile['extra_sheets']) or 'none'}")
    if profile["extra_columns"]:
        for sheet, headers in profile["extra_columns"].items():
            lines.append(f"- Extra columns in `{sheet}`: {', '.join(headers)}")
    else:
        lines.append("- Extra columns: none")
    lines.append("")
    for name, sheet in profile["sheets"].items():
        lines.append(f"## `{name}` ({sheet['rows']:,} data rows)")
        lines.append("")
        key = sheet.get("key")
        if key and key["columns"]:
            lines.append(
                f"Key: {', '.join(key['columns'])} — missing {key['missing']}, duplicates {key['duplicates']}"
            )
            lines.append("")
        lines.append("| column | contract kind | observed types | null rate | distinct | min | max | examples |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for column in sheet["columns"].values():
            types = ", ".join(f"{k} {v:,}" for k, v in column["types"].items())
            if column.get("unparseable_ids"):
                types += f" (unparseable ids {column['unparseable_ids']})"
            examples = "; ".join(_cell(v) for v in column["examples"])
            lines.append(
                f"| `{column['header']}` | {column['contract_kind'] or 'not in contract'} | {_cell(types)} "
                f"| {_pct(column['null_rate'])} | {column['distinct']:,} | {_cell(column['min'])} "
                f"| {_cell(column['max'])} | {examples} |"
            )
        lines.append("")
    lines.append("## References")
    lines.append("")
    lines.append("| source | target | match rate (distinct) | contract | distinct | orphans (distinct) | orphan rows |")
    lines.append("|---|---|---|---|---|---|---|")
    for rel in profile["relationships"]:
        if rel["status"] != "ok":
            lines.append(
                f"| `{rel['source']}` | `{rel['target']}` | missing: {', '.join(rel['missing'])} "
                f"| {_pct(rel['contract_rate'])} | | | |"
            )
            continue
        lines.append(
            f"| `{rel['source']}` | `{rel['target']}` | {_pct(rel['match_rate'])} | {_pct(rel['contract_rate'])} "
            f"| {rel['distinct_values']:,} | {rel['orphan_distinct']:,} | {rel['orphan_rows']:,} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_reports(profile: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write the dictionary (Markdown), the profile and the relationships (JSON) into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(profile["workbook"]).stem
    paths = {
        "dictionary": out / f"{stem}.dictionary.md",
        "profile": out / f"{stem}.profile.json",
        "relationships": out / f"{stem}.relationships.json",
    }
    paths["dictionary"].write_text(render_dictionary(profile), encoding="utf-8")
    paths["profile"].write_text(json.dumps(profile, indent=2, ensure_ascii=False), encoding="utf-8")
    paths["relationships"].write_text(
        json.dumps({"workbook": profile["workbook"], "relationships": profile["relationships"]},
                   indent=2, ensure_ascii=False),
        encoding="utf-8",
    )
    return paths
