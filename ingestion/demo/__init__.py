"""The demo workbook generator: a plausible factory snapshot with the contract's sheets, quirks and planted rejects.

By what it builds: factory (families, phases, defects), shape (sizes, quirk rates, planted rejects), catalogue
(products, routes, employees), history (orders walked through the shop, assignments, errors), columns and writer
(the sheets' cells and the streaming writer), workbook (the entry points)."""

from ingestion.demo.shape import GATE_PHASE, PLANTED, PLANTED_PER_REASON, sizes_for
from ingestion.demo.workbook import (
    GATE_FACTOR_RANGE,
    gate_change_for,
    generate_demo_workbook,
    manifest_path,
    order_history,
)

__all__ = [
    "GATE_FACTOR_RANGE", "GATE_PHASE", "PLANTED", "PLANTED_PER_REASON", "gate_change_for", "generate_demo_workbook",
    "manifest_path", "order_history", "sizes_for",
]
