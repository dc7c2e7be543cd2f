"""Shape of the demo file: sizes by scale, quirk rates, planted rejects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

import numpy as np

from ingestion import contract

YEARS_OF_HISTORY = 4


MIN_ORDERS = 60


MIN_PRODUCTS = 30


MIN_EMPLOYEES = 30


UNKNOWN_PER_KNOWN_PRODUCT = 339 / 894  # 72.5% of the ordered product ids are in the catalogue


# The shop: one FIFO gate (the hull moulds: every order needs one, at GATE_PHASE) with a fixed capacity,
# then the phases, whose queues grow with the rate the gate releases work. Capacity never changes over the
# history, so the same load means the same lead time in every year; only arrivals are seasonal.
SEASON_AMPLITUDE = 0.35  # arrivals peak before the racing season (mid-April), trough in October


GATE_HEADROOM = 1.2  # gate capacity / mean arrival rate: the spring peak overflows it, a backlog builds


GATE_PHASE = "Preparação Molde Casco"  # the order holds a hull mould from here: its queue is the backlog


MOULD_HOURS = 20.0  # median elapsed time of that step (prepare, wax, release agent, let it set)


SHOP_UTILISATION = 0.6  # utilisation of the phases at the mean release rate


SHOP_WINDOW_DAYS = 14  # the phases feel the releases of the last two weeks


MAX_SHOP_UTILISATION = 0.85


CAMPAIGN_SIGMA = 0.07  # four-week campaigns: log-normal spread of the arrival rate around the season


RUSH_ORDER_RATE = 0.08  # rush orders jump most of the gate's backlog


RUSH_WAIT_SHARE = 0.2


SHORTAGE_RATE = 0.04  # material shortages hold an order before the gate, whatever the load


SHORTAGE_MEAN_DAYS = 4.0


STUCK_ORDER_RATE = 0.0015  # orders abandoned mid-route: the old WIP a real snapshot always holds


TEAM_SIZE_MEAN = 1.75


ID_FLOAT_RATE, ID_TEXT_RATE = 0.02, 0.015


DATE_ISO_TEXT_RATE, DATE_DMY_TEXT_RATE = 0.01, 0.01


NULL_LITERAL_RATE = 0.08  # share of empty optional cells written as the text NULL


PLANTED_PER_REASON = 3


PLANTED: dict[str, tuple[str, ...]] = {
    contract.ORDERS.name: ("bad_id", "bad_date", "duplicate_key", "missing_key"),
    contract.ORDER_PHASES.name: ("bad_id", "bad_date", "duplicate_key", "missing_key", "end_before_start"),
    contract.ASSIGNMENTS.name: ("bad_id", "duplicate_key", "missing_key"),
    contract.ERRORS.name: ("bad_id", "bad_severity"),
}


BAD_IDS = ("12a3", "7x", "1O5")


BAD_DATES = ("31/02/2023", "not a date", "2023-13-45 10:00:00")


BAD_SEVERITIES = (5, 0, 4)


FIRST_ORDER_ID = 50_000


FIRST_ORDER_PHASE_ID = 1_500_000


LEGACY_ORDER_PHASE_IDS = (100_000, 1_400_000)  # assignments point here: phases no longer in the export


# Cell styles: how a value is written (see _restyle).
NATIVE, AS_FLOAT, AS_TEXT, NULL_TEXT, ISO_TEXT, DMY_TEXT, DMY_DATE_TEXT = range(7)


MINUTES_PER_DAY = 1440


NEVER = np.iinfo(np.int64).max // 2


CHUNK_ROWS = 20_000


def parse_as_of(raw: str | datetime) -> datetime:
    """A date means the end of that day (as prodplan.asof does); a datetime is kept, to the minute."""
    if isinstance(raw, datetime):
        return raw.replace(second=0, microsecond=0)
    text = raw.strip()
    parsed = datetime.fromisoformat(text)
    if len(text) == 10:
        parsed = datetime.combine(parsed.date(), time(23, 59, 59))
    return parsed


@dataclass(frozen=True)
class Sizes:
    """Rows to write per sheet (planted rejects included) and the product split."""

    rows: dict[str, int]
    known_products: int
    unknown_products: int

    @property
    def products(self) -> int:
        return self.known_products + self.unknown_products


def sizes_for(scale: float) -> Sizes:
    """Order-side sheets scale linearly from the real counts; catalogues keep a sensible minimum."""
    if not 0 < scale <= 10:
        raise ValueError("scale must be in (0, 10]")
    real = contract.REAL_ROW_COUNTS
    orders = max(MIN_ORDERS, round(real[contract.ORDERS.name] * scale))
    ratio = orders / real[contract.ORDERS.name]
    known = max(MIN_PRODUCTS, round(real[contract.PRODUCTS.name] * scale))
    employees = max(MIN_EMPLOYEES, round(real[contract.EMPLOYEES.name] * scale))
    rows = {
        contract.ORDERS.name: orders,
        contract.ORDER_PHASES.name: round(real[contract.ORDER_PHASES.name] * ratio),
        contract.ASSIGNMENTS.name: round(real[contract.ASSIGNMENTS.name] * ratio),
        contract.ERRORS.name: round(real[contract.ERRORS.name] * ratio),
        contract.EMPLOYEES.name: employees,
        contract.SKILLS.name: round(real[contract.SKILLS.name] * employees / real[contract.EMPLOYEES.name]),
        contract.PHASES.name: real[contract.PHASES.name],
        contract.PRODUCTS.name: known,
        contract.ROUTE_STEPS.name: round(real[contract.ROUTE_STEPS.name] * known / real[contract.PRODUCTS.name]),
    }
    return Sizes(rows, known, round(known * UNKNOWN_PER_KNOWN_PRODUCT))


def planted_count(sheet: str) -> int:
    return PLANTED_PER_REASON * len(PLANTED.get(sheet, ()))
