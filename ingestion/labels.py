"""Ingestion's stored codes and audit texts (run status and stage, reject messages, issue details, run errors) in words of the reader's language."""

from __future__ import annotations

import re

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ingestion.choices import IssueKind, RejectReason, RunStatus

_STAGES = {
    "reading": gettext_lazy("reading"),
    "validating": gettext_lazy("validating"),
    "merged": gettext_lazy("merged"),
    "unchanged": gettext_lazy("unchanged (not re-read)"),
    "done": gettext_lazy("finished"),
    "succeeded": gettext_lazy("finished"),
    "noop": gettext_lazy("no change"),
    "failed": gettext_lazy("failed"),
    "running": gettext_lazy("running"),
    "pending": gettext_lazy("pending"),
}

# What an orphan reference points at (ingestion.pipeline.sql.ORPHAN_CHECKS), by issue kind.
_TARGETS = {
    IssueKind.ORPHAN_PRODUCT: gettext_lazy("product"),
    IssueKind.ORPHAN_PHASE: gettext_lazy("catalogue phase"),
    IssueKind.ORPHAN_ORDER: gettext_lazy("manufacturing order"),
    IssueKind.ORPHAN_ORDER_PHASE: gettext_lazy("order phase"),
    IssueKind.ORPHAN_EMPLOYEE: gettext_lazy("employee"),
}


def run_status(code: str | None) -> str:
    """A run's status code (pending, running, succeeded, noop, failed) as a word."""
    return str(RunStatus(code).label) if code in RunStatus.values else (code or "—")


def run_stage(code: str | None) -> str:
    """A sheet's progress stage (reading, validating, merged, unchanged, done) as a word."""
    if not code:
        return ""
    return str(_STAGES.get(code, code))


def reject_reason(code: str | None) -> str:
    return str(RejectReason(code).label) if code in RejectReason.values else (code or "—")


def issue_kind(code: str | None) -> str:
    return str(IssueKind(code).label) if code in IssueKind.values else (code or "—")


def _int(text: str) -> str:
    return number_format(int(text.replace(",", "")), force_grouping=True)


def _cell_message(inner: str) -> str | None:
    """The reader's cell errors (ingestion.reader.CellError), translated; None when the text is not one of them."""
    patterns = (
        (r"(?P<v>.+) is not an id", lambda m: _("%(value)s is not an id (a whole number)") % {"value": m["v"]}),
        (r"(?P<v>.+) is not a whole number", lambda m: _("%(value)s is not a whole number") % {"value": m["v"]}),
        (r"negative id (?P<v>-?\d+)", lambda m: _("negative id %(value)s") % {"value": m["v"]}),
        (r"id (?P<v>-?\d+) is out of range", lambda m: _("id %(value)s is out of range") % {"value": m["v"]}),
        (r"(?P<v>.+) is not a finite number", lambda m: _("%(value)s is not a finite number") % {"value": m["v"]}),
        (r"(?P<v>.+) is not a number", lambda m: _("%(value)s is not a number") % {"value": m["v"]}),
        (r"(?P<v>.+) is not 0 or 1", lambda m: _("%(value)s is not 0 or 1") % {"value": m["v"]}),
        (r"year (?P<y>-?\d+) is outside (?P<a>\d+)\.\.(?P<b>\d+)",
         lambda m: _("year %(year)s is outside %(first)s–%(last)s") % {"year": m["y"], "first": m["a"], "last": m["b"]}),
        (r"(?P<v>.+) is a duration, not a date", lambda m: _("%(value)s is a duration, not a date") % {"value": m["v"]}),
        (r"(?P<v>.+) is not a date", lambda m: _("%(value)s is not a date") % {"value": m["v"]}),
        (r"(?P<n>\d+) characters, at most (?P<limit>\d+)",
         lambda m: _("%(n)s characters, at most %(limit)s") % {"n": m["n"], "limit": m["limit"]}),
    )
    for pattern, render in patterns:
        match = re.fullmatch(pattern, inner, flags=re.S)
        if match:
            return render(match)
    return None


def reject_message(message: str | None) -> str:
    """A reject's stored message (written in English by the reader and the SQL validation) in the reader's language."""
    if not message:
        return ""
    if match := re.fullmatch(r"same key \((?P<key>[^)]*)\) as row (?P<row>\d+)", message):
        return _("same key (%(key)s) as row %(row)s of the sheet") % {"key": match["key"], "row": match["row"]}
    if match := re.fullmatch(r"(?P<col>\S+) is empty", message):
        return _("%(column)s is empty") % {"column": match["col"]}
    if match := re.fullmatch(r"OFCH_GRAVIDADE (?P<v>\S+) is not 1, 2 or 3", message):
        value = _("empty") if match["v"] == "empty" else match["v"]
        return _("OFCH_GRAVIDADE %(value)s is not 1, 2 or 3") % {"value": value}
    if match := re.fullmatch(r"FaseOf_Fim (?P<end>.+) is before FaseOf_Inicio (?P<start>.+)", message):
        return _("FaseOf_Fim %(end)s is before FaseOf_Inicio %(start)s") % {"end": match["end"], "start": match["start"]}
    column, sep, inner = message.partition(": ")
    if sep and " " not in column:
        translated = _cell_message(inner)
        if translated is not None:
            return f"{column}: {translated}"
    translated = _cell_message(message)
    return message if translated is None else translated


def issue_detail(*, kind: str, entity: str, key: str, row_count: int, measured: float | None, detail: str = "") -> str:
    """A data-quality issue in words: what is unmatched, how much, and that the rows are stored anyway."""
    target = str(_TARGETS.get(kind, _("reference")))
    if kind == IssueKind.LOW_MATCH_RATE or kind not in _TARGETS:
        return detail
    if key != "*":
        return ngettext(
            "%(n)s row of %(entity)s names %(value)s, which is not a known %(target)s.",
            "%(n)s rows of %(entity)s name %(value)s, which is not a known %(target)s.",
            row_count,
        ) % {"n": number_format(row_count, force_grouping=True), "entity": entity, "value": key, "target": target}
    rate = "—" if measured is None else number_format(round(measured * 100, 1), 1) + "%"
    counts = re.match(r"(?P<missing>[\d,]+) of (?P<distinct>[\d,]+) distinct values", detail or "")
    stored = ngettext("%(rows)s row is stored anyway.", "%(rows)s rows are stored anyway.", row_count) % {
        "rows": number_format(row_count, force_grouping=True)}
    if counts:
        missing = int(counts["missing"].replace(",", ""))
        head = ngettext(
            "%(missing)s of %(distinct)s distinct values of %(entity)s matches no %(target)s (match rate %(rate)s);",
            "%(missing)s of %(distinct)s distinct values of %(entity)s match no %(target)s (match rate %(rate)s);",
            missing,
        ) % {"missing": _int(counts["missing"]), "distinct": _int(counts["distinct"]), "entity": entity,
             "target": target, "rate": rate}
    else:
        head = _("Values of %(entity)s that match no %(target)s (match rate %(rate)s);") % {
            "entity": entity, "target": target, "rate": rate}
    return f"{head} {stored}"


def run_error(error: str | None) -> str:
    """A failed run's stored reason, in words of the reader's language where it is one of the known refusals."""
    if not error:
        return ""
    match = re.fullmatch(
        r"refused: this file would delete more than (?P<limit>\d+%) of stored rows — (?P<sheets>.+)\. Nothing was changed\. "
        r"If the export is really complete, run again with --allow-shrink \(API: allow_shrink=true\)\.", error, flags=re.S)
    if not match:
        return error
    sheets = []
    for part in match["sheets"].split("; "):
        sheet = re.fullmatch(r"(?P<sheet>\S+) would lose (?P<lost>[\d,]+) of (?P<stored>[\d,]+) stored rows \((?P<share>[\d.]+)%\)", part)
        if sheet is None:
            sheets.append(part)
            continue
        sheets.append(_("%(sheet)s would lose %(lost)s of %(stored)s stored rows (%(share)s%%)") % {
            "sheet": sheet["sheet"], "lost": _int(sheet["lost"]), "stored": _int(sheet["stored"]),
            "share": number_format(round(float(sheet["share"]), 1), 1)})
    return _("Refused: this file would delete more than %(limit)s of the stored rows of a sheet — %(sheets)s. Nothing was "
             "changed. If the export really is complete, upload it again with the box “Allow this file to delete more "
             "than 5%% of the stored rows” ticked.") % {"limit": match["limit"], "sheets": "; ".join(sheets)}


_SKIPS = {"no such reject of this sheet": gettext_lazy("no such reject of this sheet"),
          "already resolved": gettext_lazy("already resolved"),
          "superseded by a later run": gettext_lazy("superseded by a later run (the row was fixed or is gone)")}


def skip_reason(why: str) -> str:
    """Why the corrections import skipped a row (ingestion.triage.rejects_import_corrections), in words."""
    return str(_SKIPS.get(why, why))


def corrections_error(message: str) -> str:
    """Why a corrections file could not be imported at all (CorrectionsRejected), in words."""
    if match := re.fullmatch(r"not an \.xlsx workbook: (?P<detail>.*)", message, flags=re.S):
        return _("not an .xlsx workbook (%(detail)s)") % {"detail": match["detail"]}
    if match := re.fullmatch(r"sheet (?P<sheet>.+) is not a sheet of the workbook contract", message):
        return _("sheet %(sheet)s is not a sheet of the workbook contract") % {"sheet": match["sheet"]}
    if match := re.fullmatch(r"sheet (?P<sheet>\S+): missing header\(s\) (?P<headers>.+)", message):
        return _("sheet %(sheet)s: missing column(s) %(headers)s") % {"sheet": match["sheet"], "headers": match["headers"]}
    return message


def upload_error(message: str) -> str:
    """Why an upload was refused (ingestion.uploads.UploadRejected, English for the API), in the page's language."""
    if match := re.fullmatch(r"(?P<name>.+) is not an \.xlsx workbook", message):
        return _("%(name)s is not an .xlsx workbook") % {"name": match["name"]}
    if match := re.fullmatch(r"(?P<name>.+) is (?P<size>\d+) MB; the limit is (?P<limit>\d+) MB", message):
        return _("%(name)s is %(size)s MB; the limit is %(limit)s MB") % {
            "name": match["name"], "size": match["size"], "limit": match["limit"]}
    if match := re.fullmatch(r"(?P<name>.+) is not an Excel workbook \(it does not start with the xlsx zip signature\)", message):
        return _("%(name)s is not an Excel workbook (it does not start with the .xlsx signature)") % {"name": match["name"]}
    if match := re.fullmatch(r"(?P<name>.+) is not a file in the inbox folder", message):
        return _("%(name)s is not a file in the inbox folder") % {"name": match["name"]}
    return message
