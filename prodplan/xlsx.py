"""Safe .xlsx export cells: text a spreadsheet would run as a formula (=, +, -, @, tab, CR) is written as plain text."""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_row(sheet, values: Iterable) -> list:
    """The row to append to a write-only sheet: every string starting with a formula trigger becomes a text cell
    (data_type "s", quote-prefixed so Excel keeps it text even when edited); it reads back as the same string."""
    from openpyxl.cell import WriteOnlyCell

    row = []
    for value in values:
        if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cell.quotePrefix = True
            value = cell
        row.append(value)
    return row
