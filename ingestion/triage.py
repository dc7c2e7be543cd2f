"""Steward triage of rejects: acknowledge or ignore, export to Excel, re-validate, import corrections."""

from __future__ import annotations

import hashlib

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ingestion import labels
from ingestion.choices import RejectReason, TriageStatus
from ingestion.contract import SHEETS_BY_NAME, SheetSpec
from ingestion.models import Reject
from ingestion.pipeline.merge import ensure_partitions
from ingestion.pipeline.sql import (
    TARGETS,
    copy_columns,
    q,
    staging_ddl,
    staging_table,
    upsert_sql,
    validation_sql,
)
from ingestion.reader import (
    COERCERS,
    CellError,
    coerce_id,
    coerce_text,
    jsonable,
    normalise_header,
)
from prodplan.cache import bump_data_version
from prodplan.xlsx import safe_row

CLOSED_STATUSES = (TriageStatus.RESOLVED, TriageStatus.SUPERSEDED)


def steward(user):
    """The user to record as triaging (None for anonymous or system callers)."""
    return user if getattr(user, "pk", None) else None


def resolve(reject: Reject, *, user, how: str) -> None:
    """Mark a reject resolved because its row is now stored (the caller saves it)."""
    reject.status, reject.triaged_at, reject.triaged_by = TriageStatus.RESOLVED, timezone.now(), steward(user)
    reject.message = f"{reject.message} — resolved: {how}"


def rejects_set_status(*, reject_ids: list[int], status: str, user=None) -> int:
    """Acknowledge or ignore rejects; returns how many changed."""
    if status not in (TriageStatus.ACKNOWLEDGED, TriageStatus.IGNORED, TriageStatus.OPEN):
        raise ValueError(f"unknown triage status {status!r}")
    return (
        Reject.objects.filter(pk__in=reject_ids)
        .exclude(status=status)
        .update(status=status, triaged_at=timezone.now(), triaged_by=steward(user))
    )


# After a sheet's own headers: where the row came from and why it failed, in the reader's language (for the
# steward; the import ignores them), then _reject_id, the one technical column, which brings a fixed row back.
EXPORT_REJECT_ID = "_reject_id"


def export_extra_headers() -> list[str]:
    """The headers the export adds after the sheet's own: row, reason and problem in words, then _reject_id."""
    return [str(_("Excel row")), str(_("Reason")), str(_("Problem")), EXPORT_REJECT_ID]


class CorrectionsRejected(Exception):
    """The corrections file cannot be imported at all (not a workbook, a sheet or header missing); nothing changed."""


def bad_cells(reject: Reject, cells: dict) -> dict[str, str]:
    """The cells of a rejected row that make it fail, by header, each with the problem in words.

    The reject's own column and reason first; then every other cell the reader could not read as its type
    (a row can hold more than the first failing cell the reader recorded)."""
    spec = SHEETS_BY_NAME.get(reject.sheet)
    found = {}
    if reject.column:
        found[reject.column] = f"{labels.reject_reason(reject.reason)}: {labels.reject_message(reject.message)}"
    if spec is None:
        return found
    for header, kind in spec.columns.items():
        if header in found:
            continue
        coercer = COERCERS.get(kind)
        try:
            coercer(cells.get(header)) if coercer else coerce_text(cells.get(header), header)
        except CellError as exc:
            found[header] = f"{labels.reject_reason(exc.reason)}: {labels.reject_message(f'{header}: {exc.message}')}"
    return found


BAD_CELL_FILL = "FDE2E1"  # the admin's highlight of the failing cell


def rejects_export_xlsx(*, reject_ids: list[int], stream) -> int:
    """Write the rejects to an .xlsx, one sheet per workbook sheet with its original headers (+ row, reason, id).

    The header row is frozen; each bad cell is filled and carries a comment naming the problem. The steward
    fixes the cells in Excel and imports the file back (rejects_import_corrections)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import Cell
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill

    workbook = Workbook(write_only=True)
    count = 0
    rejects = Reject.objects.filter(pk__in=reject_ids).order_by("sheet", "run_id", "row_number")
    sheets: dict[str, object] = {}
    fill = PatternFill(fill_type="solid", start_color=BAD_CELL_FILL, end_color=BAD_CELL_FILL)
    for reject in rejects.iterator():
        spec = SHEETS_BY_NAME.get(reject.sheet)
        headers = spec.headers if spec else sorted(reject.original)
        if reject.sheet not in sheets:
            sheet = sheets[reject.sheet] = workbook.create_sheet(reject.sheet[:31])
            sheet.freeze_panes = "A2"
            header_cells = []
            for value in safe_row(sheet, [*headers, *export_extra_headers()]):
                cell = value if isinstance(value, Cell) else WriteOnlyCell(sheet, value=value)
                cell.font = Font(bold=True)
                header_cells.append(cell)
            sheet.append(header_cells)
        sheet = sheets[reject.sheet]
        values = reject.corrected or reject.original  # a row already corrected once goes out as corrected
        bad = bad_cells(reject, values)
        row = safe_row(sheet, [values.get(h) for h in headers]
                       + [reject.row_number, labels.reject_reason(reject.reason), labels.reject_message(reject.message), reject.pk])
        for index, header in enumerate(headers):
            if header in bad:
                cell = row[index] if isinstance(row[index], Cell) else WriteOnlyCell(sheet, value=row[index])
                cell.fill = fill
                cell.comment = Comment(bad[header], "PRODPLAN")
                row[index] = cell
        sheet.append(row)
        count += 1
    workbook.save(stream)
    return count


def rejects_revalidate(*, reject_ids: list[int], user=None) -> dict:
    """Re-check rejects against the current data; rows that now pass are stored and marked resolved."""
    resolved = still = 0
    with transaction.atomic():
        for reject in Reject.objects.select_for_update().filter(pk__in=reject_ids).exclude(status__in=CLOSED_STATUSES):
            spec = SHEETS_BY_NAME.get(reject.sheet)
            if spec is None:
                still += 1
                continue
            reason = store_if_valid(spec, reject.original, reject.row_number)
            if reason is None:
                resolve(reject, user=user, how="stored after re-validation")
                reject.save()
                resolved += 1
            else:
                still += 1
        if resolved:
            bump_data_version()
    return {"resolved": resolved, "still_rejected": still}


def rejects_import_corrections(*, stream, user=None) -> dict:
    """Import a rejects export the steward fixed in Excel: each row whose corrected cells now pass is stored
    and its reject resolved; the others keep their status, with the corrected values and the new reason.

    One transaction: a file that cannot be read, or a sheet without its headers, changes nothing
    (CorrectionsRejected). Returns counts and, per row that still fails or was skipped, why."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises several types for a file that is not a workbook
        raise CorrectionsRejected(f"not an .xlsx workbook: {type(exc).__name__}: {exc}") from exc
    resolved, stored, still, skipped = 0, [], [], []
    with transaction.atomic():
        for sheet in workbook.worksheets:
            spec = SHEETS_BY_NAME.get(sheet.title.strip())
            if spec is None:
                raise CorrectionsRejected(f"sheet {sheet.title!r} is not a sheet of the workbook contract")
            rows = sheet.iter_rows(values_only=True)
            headers = [normalise_header(h) for h in next(rows, ())]
            absent = [h for h in (*spec.headers, EXPORT_REJECT_ID) if h not in headers]
            if absent:
                raise CorrectionsRejected(f"sheet {spec.name}: missing header(s) {', '.join(absent)}")
            at = {h: headers.index(h) for h in (*spec.headers, EXPORT_REJECT_ID)}
            fixed = []  # (file row, reject id, cells)
            for excel_row, row in enumerate(rows, start=2):
                if not any(cell is not None and cell != "" for cell in row):
                    continue
                row = list(row) + [None] * (len(headers) - len(row))
                try:
                    reject_id = coerce_id(row[at[EXPORT_REJECT_ID]])
                except CellError:
                    reject_id = None
                fixed.append((excel_row, reject_id, row))
            # One locking read for the sheet's rejects, not one per row.
            known = Reject.objects.select_for_update().filter(sheet=spec.name).in_bulk([i for _, i, _ in fixed if i])
            for excel_row, reject_id, row in fixed:
                reject = known.get(reject_id)
                if reject is None or reject.status in CLOSED_STATUSES:
                    why = ("no such reject of this sheet" if reject is None else
                           "already resolved" if reject.status == TriageStatus.RESOLVED else "superseded by a later run")
                    skipped.append({"sheet": spec.name, "file_row": excel_row, "reject_id": reject_id, "why": why})
                    continue
                reject.corrected = {h: jsonable(row[at[h]]) for h in spec.headers}
                reason = store_if_valid(spec, reject.corrected, reject.row_number)
                if reason is None:
                    resolve(reject, user=user, how="corrected values imported and stored")
                    resolved += 1
                    stored.append({"sheet": spec.name, "file_row": excel_row, "reject_id": reject.pk})
                else:
                    still.append({"sheet": spec.name, "file_row": excel_row, "reject_id": reject.pk, "reason": reason})
                reject.save()
        if resolved:
            bump_data_version()
    return {"resolved": resolved, "stored": stored, "still_rejected": still, "skipped": skipped}


def corrections_report_rows(result: dict) -> list[list]:
    """One line per row of the imported file: sheet, file row, reject id, result code, reason code (in file order)."""
    rows = [[r["sheet"], r["file_row"], r["reject_id"], "stored", ""] for r in result.get("stored", [])]
    rows += [[r["sheet"], r["file_row"], r["reject_id"], "still_rejected", r["reason"]] for r in result["still_rejected"]]
    rows += [[r["sheet"], r["file_row"], r["reject_id"], "skipped", r["why"]] for r in result["skipped"]]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def corrections_report_csv(rows: list[list], stream) -> None:
    """The corrections import's report as CSV (UTF-8 with BOM, for Excel) in the reader's language:
    sheet, file row, reject, result, reason."""
    import csv

    results = {"stored": _("stored, reject resolved"), "still_rejected": _("still rejected"), "skipped": _("skipped")}
    stream.write("\ufeff")
    writer = csv.writer(stream)
    writer.writerow([_("sheet"), _("file row"), _("reject"), _("result"), _("reason")])
    for sheet, file_row, reject_id, result, reason in rows:
        why = labels.reject_reason(reason) if result == "still_rejected" else labels.skip_reason(reason) if reason else ""
        writer.writerow([sheet, file_row, "" if reject_id is None else reject_id, results.get(result, result), why])


def store_if_valid(spec: SheetSpec, cells: dict, row_number: int) -> str | None:
    """Coerce and validate one row (cells by header) exactly as the pipeline would; store it if it passes.
    Returns None when stored, else the reject reason."""
    values = []
    for header, kind in spec.columns.items():
        coercer = COERCERS.get(kind)
        try:
            values.append(coercer(cells.get(header)) if coercer else coerce_text(cells.get(header), header))
        except CellError as exc:
            return exc.reason
    target = TARGETS[spec.name]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staging_table(spec)}")
        cursor.execute(staging_ddl(spec).replace(" ON COMMIT DROP", ""))
        columns = copy_columns(spec)
        record = [row_number, None, None, None, None, *values]
        if not spec.key:
            record.append(hashlib.sha256(repr(values).encode()).hexdigest())
        placeholders = ", ".join(["%s"] * len(record))
        cursor.execute(
            f"INSERT INTO {staging_table(spec)} ({', '.join(q(c) for c in columns)}) VALUES ({placeholders})", record
        )
        for statement in validation_sql(spec):
            cursor.execute(statement)
        cursor.execute(f"SELECT _reject FROM {staging_table(spec)}")
        reason = cursor.fetchone()[0]
        if reason is None and spec.key:
            # A key already stored means the row is still a duplicate of the stored one.
            key_match = " AND ".join(f"t.{c} = s.{q(h)}" for c, h in zip(TARGETS[spec.name].key, spec.key, strict=False)
                                     if c != "event_time")
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {target.table} t, {staging_table(spec)} s WHERE {key_match})")
            if cursor.fetchone()[0]:
                reason = RejectReason.DUPLICATE_KEY
        if reason is None and not spec.key:
            cursor.execute(
                "UPDATE stg_ordemfabricoerros s SET _occurrence = 1 + (SELECT count(*) FROM quality_qualityerror q "
                "WHERE q.order_id = s.\"Erro_OfId\" AND q.content_hash = s._hash)"
            )
        if reason is None:
            if spec.name == "FasesOrdemFabrico":
                ensure_partitions(cursor)
            cursor.execute(upsert_sql(spec))
        cursor.execute(f"DROP TABLE {staging_table(spec)}")
    return reason
