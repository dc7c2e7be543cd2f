"""The demo workbook generator: a plausible factory snapshot with the contract's sheets, quirks and planted rejects."""

from ingestion.demo.workbook import (
    GATE_FACTOR_RANGE,
    GATE_PHASE,
    PLANTED,
    PLANTED_PER_REASON,
    gate_change_for,
    generate_demo_workbook,
    manifest_path,
    order_history,
    sizes_for,
)

__all__ = [
    "GATE_FACTOR_RANGE", "GATE_PHASE", "PLANTED", "PLANTED_PER_REASON", "gate_change_for", "generate_demo_workbook",
    "manifest_path", "order_history", "sizes_for",
]
