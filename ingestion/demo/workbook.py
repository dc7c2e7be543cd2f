"""Demo workbook generator: a plausible factory snapshot with the contract's sheets, quirks and planted rejects."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from ingestion import contract
from ingestion.inspector import is_null, parse_id

# ----------------------------------------------------------------------------------------------
# The factory: families, phases, defects. Figures are invented but shaped like a composite shop.
# ----------------------------------------------------------------------------------------------

FAMILIES = ("K1", "K2", "K4", "C1", "C2", "C4")
FAMILY_PRODUCT_SHARE = np.array([0.22, 0.22, 0.12, 0.18, 0.16, 0.10])
FAMILY_DEMAND = np.array([1.25, 1.2, 1.0, 0.9, 0.85, 0.7])  # order popularity multiplier
FAMILY_FINISHED_KG = np.array([12.0, 18.0, 30.0, 16.0, 26.0, 40.0])
FAMILY_WORK = np.array([1.0, 1.3, 1.9, 1.1, 1.45, 2.05])  # labour-time multiplier
FAMILY_ROUTE_MEAN = np.array([14.5, 16.5, 20.0, 14.5, 17.0, 20.5])
FAMILY_DEFECTS = np.array([1.0, 1.15, 1.6, 1.1, 1.3, 1.8])
FAMILY_SEVERITY_SHIFT = np.array([0.0, 0.03, 0.10, 0.02, 0.06, 0.12])
IS_CANOE = np.array([False, False, False, True, True, True])
PRODUCT_LINES = {
    "K": ("Sprint", "Marathon", "Touring", "Slalom", "Wildwater", "Ocean"),
    "C": ("Sprint", "Marathon", "Slalom", "Touring", "Open"),
}
PRODUCT_VARIANTS = ("Elite", "Pro", "Club", "Junior", "Racer", "Lite", "Carbon", "Vision", "Apex", "Storm", "Vector")

# name, kind, production, automatic, labour hours (median), queue hours at normal load,
# optional-route weight for kayaks, for canoes (0: core step or never optional)
PHASE_TABLE: list[tuple[str, str, int, int, float, float, float, float]] = [
    ("Lançamento OF", "admin", 0, 0, 0.0, 0.5, 0, 0),
    ("Planeamento", "admin", 0, 0, 0.0, 6.0, 2.0, 2.0),
    ("Aprovisionamento Materiais", "admin", 0, 0, 0.0, 10.0, 1.5, 1.5),
    ("Reserva Molde", "admin", 0, 0, 0.0, 3.0, 0.6, 0.6),
    ("Emissão Etiquetas", "admin", 0, 0, 0.0, 1.0, 0.5, 0.5),
    ("Limpeza Molde", "mould", 1, 0, 0.5, 1.0, 0.8, 0.8),
    ("Aplicação Desmoldante", "mould", 1, 0, 0.3, 0.5, 1.0, 1.0),
    ("Preparação Molde Casco", "mould", 1, 0, 0.8, 2.0, 0, 0),
    ("Preparação Molde Deck", "mould", 1, 0, 0.6, 1.5, 3.0, 2.5),
    ("Corte Tecidos", "cut", 1, 0, 0.8, 1.5, 1.2, 1.2),
    ("Corte Núcleo", "cut", 1, 1, 0.3, 1.0, 0.7, 0.7),
    ("Corte CNC Carbono", "cut", 1, 1, 0.4, 1.0, 0.7, 0.5),
    ("Gelcoat Casco", "gel", 1, 0, 0.7, 3.0, 0, 0),
    ("Gelcoat Deck", "gel", 1, 0, 0.5, 2.0, 3.0, 2.5),
    ("Gelcoat Cor Especial", "gel", 1, 0, 0.6, 2.0, 0.4, 0.4),
    ("Cura Gelcoat", "cure", 1, 1, 1.5, 0.5, 1.0, 1.0),
    ("Laminação Casco", "lam", 1, 0, 3.0, 8.0, 0, 0),
    ("Laminação Deck", "lam", 1, 0, 2.0, 6.0, 3.0, 2.5),
    ("Laminação Reforços", "lam", 1, 0, 1.2, 4.0, 1.5, 1.5),
    ("Laminação Carbono", "lam", 1, 0, 2.5, 6.0, 1.0, 0.8),
    ("Laminação Kevlar", "lam", 1, 0, 2.5, 6.0, 0.5, 0.6),
    ("Colocação Núcleo", "lam", 1, 0, 0.8, 2.0, 1.0, 1.0),
    ("Ensacamento Vácuo", "lam", 1, 0, 1.0, 2.0, 1.2, 1.2),
    ("Infusão Vácuo", "lam", 1, 0, 3.5, 8.0, 0.6, 0.6),
    ("Cura Forno", "cure", 1, 1, 8.0, 6.0, 0, 0),
    ("Cura Ambiente", "cure", 1, 1, 16.0, 1.0, 0.5, 0.5),
    ("Pós-Cura", "cure", 1, 1, 6.0, 4.0, 0.6, 0.6),
    ("Desmoldagem Casco", "demould", 1, 0, 0.8, 3.0, 0, 0),
    ("Desmoldagem Deck", "demould", 1, 0, 0.6, 2.0, 3.0, 2.5),
    ("Inspeção Visual Desmoldagem", "inspect", 1, 0, 0.3, 1.0, 1.5, 1.5),
    ("Rebarbagem", "trim", 1, 0, 0.7, 2.0, 0, 0),
    ("Corte Aberturas", "trim", 1, 0, 0.6, 1.5, 1.5, 1.2),
    ("Furação", "trim", 1, 0, 0.4, 1.0, 1.2, 1.0),
    ("Colagem Casco-Deck", "join", 1, 0, 1.5, 4.0, 2.5, 2.0),
    ("Fita Junção Interior", "join", 1, 0, 0.8, 2.0, 1.5, 1.2),
    ("Fita Junção Exterior", "join", 1, 0, 0.8, 2.0, 1.5, 1.2),
    ("Cura Colagem", "cure", 1, 1, 6.0, 1.0, 1.2, 1.0),
    ("Registo Qualidade", "admin", 0, 0, 0.0, 0.5, 0.6, 0.6),
    ("Inspeção Intermédia", "inspect", 1, 0, 0.4, 2.0, 1.5, 1.5),
    ("Bloqueio Qualidade", "admin", 0, 0, 0.0, 0.5, 0.2, 0.2),
    ("Reparação Estrutural", "finish", 1, 0, 2.0, 6.0, 0.3, 0.3),
    ("Desbloqueio Qualidade", "admin", 0, 0, 0.0, 4.0, 0.2, 0.2),
    ("Lixagem", "finish", 1, 0, 2.0, 5.0, 2.0, 2.0),
    ("Betumação", "finish", 1, 0, 1.0, 3.0, 1.0, 1.0),
    ("Reparação Gelcoat", "finish", 1, 0, 1.2, 3.0, 0.8, 0.8),
    ("Acabamento Exterior", "finish", 1, 0, 2.5, 6.0, 0, 0),
    ("Acabamento Interior", "finish", 1, 0, 1.5, 4.0, 1.5, 1.2),
    ("Polimento", "finish", 1, 0, 1.5, 4.0, 1.8, 1.8),
    ("Montagem Leme", "assembly", 1, 0, 0.6, 2.0, 2.5, 0.2),
    ("Montagem Sistema Leme", "assembly", 1, 0, 0.8, 2.0, 1.5, 0.1),
    ("Montagem Assento", "assembly", 1, 0, 0.5, 1.5, 2.0, 0.2),
    ("Montagem Finca-Pés", "assembly", 1, 0, 0.5, 1.5, 2.0, 0.2),
    ("Montagem Bancos", "assembly", 1, 0, 0.7, 1.5, 0.1, 2.5),
    ("Montagem Joelheira", "assembly", 1, 0, 0.5, 1.5, 0.1, 2.5),
    ("Montagem Cockpit", "assembly", 1, 0, 0.9, 2.0, 1.5, 0.8),
    ("Montagem Ferragens", "assembly", 1, 0, 0.6, 1.5, 1.5, 1.5),
    ("Pintura", "paint", 1, 0, 2.0, 5.0, 0.8, 0.8),
    ("Decoração Vinil", "paint", 1, 0, 0.5, 1.5, 1.0, 1.0),
    ("Verniz", "paint", 1, 0, 1.0, 3.0, 0.5, 0.6),
    ("Marcação Laser", "paint", 1, 1, 0.2, 1.0, 0.8, 0.8),
    ("Pesagem", "inspect", 1, 1, 0.1, 0.5, 1.5, 1.5),
    ("Teste Estanquidade", "inspect", 1, 0, 0.6, 2.0, 1.0, 1.0),
    ("Inspeção Final", "inspect", 1, 0, 0.5, 3.0, 0, 0),
    ("Limpeza Final", "pack", 1, 0, 0.4, 1.0, 1.2, 1.2),
    ("Embalagem", "pack", 1, 0, 0.5, 2.0, 0, 0),
    ("Paletização", "pack", 1, 0, 0.3, 1.0, 0.6, 0.6),
    ("Aprovação Cliente", "admin", 0, 0, 0.0, 8.0, 0.3, 0.3),
    ("Fecho OF", "admin", 0, 0, 0.0, 2.0, 2.5, 2.5),
    ("Pedido Transporte", "admin", 0, 0, 0.0, 4.0, 0.5, 0.5),
    ("Expedição", "admin", 0, 0, 0.0, 12.0, 1.5, 1.5),
    ("Faturação", "admin", 0, 0, 0.0, 6.0, 0.5, 0.5),
]
CORE_PHASES = (
    "Lançamento OF",
    "Preparação Molde Casco",
    "Gelcoat Casco",
    "Laminação Casco",
    "Cura Forno",
    "Desmoldagem Casco",
    "Rebarbagem",
    "Acabamento Exterior",
    "Inspeção Final",
    "Embalagem",
)
MIN_ROUTE, MAX_ROUTE = len(CORE_PHASES), 25
EXTRA_EVENT_PHASES = {
    "Registo Qualidade": 3.0,
    "Bloqueio Qualidade": 1.0,
    "Desbloqueio Qualidade": 1.0,
    "Aprovação Cliente": 1.0,
    "Pedido Transporte": 1.0,
}
# Where defects are caused (culprit propensity) and how often a pass is redone, by phase kind.
CULPRIT_WEIGHT = {"gel": 3.0, "lam": 4.0, "mould": 1.5, "cure": 1.2, "demould": 1.5, "join": 2.0, "trim": 1.0,
                  "finish": 1.5, "assembly": 1.0, "paint": 1.0, "cut": 0.6, "inspect": 0.1, "pack": 0.3}
REWORK_WEIGHT = {"finish": 3.0, "lam": 2.0, "gel": 2.0, "join": 1.5, "paint": 1.5, "assembly": 1.0, "trim": 0.8,
                 "mould": 0.3, "demould": 0.3, "inspect": 0.3, "pack": 0.2, "cut": 0.3}
EVALUATION_WEIGHT = {"Inspeção Final": 3.0, "Inspeção Intermédia": 2.5, "Inspeção Visual Desmoldagem": 2.0,
                     "Teste Estanquidade": 1.2, "Pesagem": 0.6, "Desmoldagem Casco": 1.2, "Desmoldagem Deck": 0.8,
                     "Acabamento Exterior": 0.8}
MINOR, MAJOR, CRITICAL = (0.70, 0.25, 0.05), (0.35, 0.45, 0.20), (0.15, 0.40, 0.45)
DEFECTS: dict[str, list[tuple[str, tuple[float, float, float]]]] = {
    "gel": [("Bolhas no gelcoat", MINOR), ("Gelcoat com poros", MINOR),
            ("Espessura de gelcoat insuficiente", MAJOR), ("Escorrido de gelcoat", MINOR)],
    "lam": [("Delaminação", CRITICAL), ("Zona seca (falta de resina)", MAJOR), ("Excesso de resina", MINOR),
            ("Rugas no tecido", MAJOR), ("Bolha de ar na laminação", MAJOR)],
    "mould": [("Marcas de molde", MINOR), ("Molde mal preparado", MAJOR)],
    "cure": [("Cura incompleta", CRITICAL), ("Sobreaquecimento", MAJOR)],
    "demould": [("Fissura na desmoldagem", CRITICAL), ("Risco na desmoldagem", MINOR)],
    "join": [("Colagem deficiente casco-deck", CRITICAL), ("Fita de junção descolada", MAJOR)],
    "trim": [("Corte irregular", MINOR), ("Furação desalinhada", MAJOR)],
    "finish": [("Riscos no acabamento", MINOR), ("Lixagem excessiva", MAJOR), ("Polimento insuficiente", MINOR)],
    "assembly": [("Leme desalinhado", MAJOR), ("Ferragens mal apertadas", MINOR), ("Assento mal posicionado", MINOR)],
    "paint": [("Pintura com escorridos", MINOR), ("Vinil mal aplicado", MINOR)],
    "cut": [("Tecido mal cortado", MINOR)],
    "inspect": [("Peso fora de tolerância", MAJOR)],
    "pack": [("Dano na embalagem", MINOR)],
}
FIRST_NAMES = ("Ana", "João", "Maria", "José", "Rui", "Sofia", "Pedro", "Inês", "Carlos", "Marta", "Paulo", "Rita",
               "Miguel", "Joana", "Luís", "Catarina", "Nuno", "Sara", "Tiago", "Filipa", "Bruno", "Helena",
               "Ricardo", "Beatriz", "André", "Teresa", "Hugo", "Cláudia", "Vítor", "Patrícia", "Diogo", "Sandra",
               "Fernando", "Lúcia", "Manuel", "Daniela", "Jorge", "Vera", "Sérgio", "Carla")
SURNAMES = ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Jesus",
            "Sousa", "Fernandes", "Gonçalves", "Gomes", "Lopes", "Marques", "Alves", "Almeida", "Ribeiro", "Pinto",
            "Carvalho", "Teixeira", "Moreira", "Correia", "Mendes", "Nunes", "Soares", "Vieira", "Monteiro",
            "Cardoso", "Rocha", "Neves", "Coelho", "Cruz", "Cunha", "Pires", "Ramos", "Reis", "Simões")

# ----------------------------------------------------------------------------------------------
# Shape of the file: sizes, quirk rates, planted rejects.
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# Catalogue: phases, products and their standard routes, employees and skills.
# ----------------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    phase_ids: np.ndarray
    phase_name: list[str]
    phase_kind: np.ndarray
    production: np.ndarray
    automatic: np.ndarray
    hours: np.ndarray
    queue_hours: np.ndarray
    product_ids: np.ndarray
    product_known: np.ndarray
    product_name: list[str]
    product_family: np.ndarray
    finished_kg: np.ndarray
    demould_kg: np.ndarray
    gel_deck: np.ndarray
    gel_hull: np.ndarray
    complexity: np.ndarray
    defect_factor: np.ndarray
    popularity: np.ndarray
    active_from: np.ndarray  # minutes; orders for the product are created inside [from, to]
    active_to: np.ndarray
    route_len: np.ndarray
    route_phase: np.ndarray  # [product, step] phase index, -1 padded
    route_coef: np.ndarray
    route_coef_x: np.ndarray


def _phases(rng: np.random.Generator) -> dict[str, Any]:
    assert len(PHASE_TABLE) == contract.REAL_ROW_COUNTS[contract.PHASES.name]
    n = len(PHASE_TABLE)
    # Ids with the gaps a long-lived ERP catalogue has.
    ids = np.sort(rng.choice(np.arange(1, 3 * n), size=n, replace=False)).astype(np.int64)
    return {
        "phase_ids": ids,
        "phase_name": [row[0] for row in PHASE_TABLE],
        "phase_kind": np.array([row[1] for row in PHASE_TABLE]),
        "production": np.array([row[2] for row in PHASE_TABLE], dtype=bool),
        "automatic": np.array([row[3] for row in PHASE_TABLE], dtype=bool),
        "hours": np.array([row[4] for row in PHASE_TABLE]),
        "queue_hours": np.array([row[5] for row in PHASE_TABLE]),
    }


def _route_lengths(rng, family: np.ndarray, known: np.ndarray, known_total: int) -> np.ndarray:
    """Family-dependent route lengths whose sum over catalogue products is exactly known_total."""
    target_mean = known_total / max(int(known.sum()), 1)
    means = FAMILY_ROUTE_MEAN[family]
    means = means + (target_mean - means[known].mean())
    lengths = np.clip(np.rint(rng.normal(means, 2.5)), MIN_ROUTE, MAX_ROUTE).astype(np.int64)
    known_idx = np.flatnonzero(known)
    for _ in range(10_000):
        diff = known_total - int(lengths[known_idx].sum())
        if diff == 0:
            break
        room = lengths[known_idx] < MAX_ROUTE if diff > 0 else lengths[known_idx] > MIN_ROUTE
        candidates = known_idx[room]
        picked = rng.choice(candidates, size=min(abs(diff), len(candidates)), replace=False)
        lengths[picked] += 1 if diff > 0 else -1
    else:  # pragma: no cover - only if the target is outside MIN_ROUTE..MAX_ROUTE per product
        raise ValueError("cannot reach the route-step count with routes of 10..25 steps")
    return lengths


def _catalogue(rng: np.random.Generator, sizes: Sizes, start_min: int, as_of_min: int) -> Catalogue:
    phases = _phases(rng)
    names = phases["phase_name"]
    core = np.array([name in CORE_PHASES for name in names])
    weight_k = np.array([row[6] for row in PHASE_TABLE])
    weight_c = np.array([row[7] for row in PHASE_TABLE])

    n = sizes.products
    family = rng.choice(len(FAMILIES), size=n, p=FAMILY_PRODUCT_SHARE)
    ids = np.sort(rng.choice(np.arange(1000, 1000 + 4 * n), size=n, replace=False)).astype(np.int64)
    # Products missing from the catalogue are mostly old (low ids): discontinued and deleted.
    age_weight = np.linspace(3.0, 1.0, n)
    unknown = rng.choice(n, size=sizes.unknown_products, replace=False, p=age_weight / age_weight.sum())
    known = np.ones(n, dtype=bool)
    known[unknown] = False

    span = as_of_min - start_min
    active_from = np.full(n, start_min - 400 * MINUTES_PER_DAY, dtype=np.int64)
    launched = known & (rng.random(n) < 0.35)
    active_from[launched] = start_min + (rng.uniform(0.0, 0.85, launched.sum()) * span).astype(np.int64)
    active_to = np.full(n, as_of_min, dtype=np.int64)
    active_to[~known] = start_min + (rng.uniform(0.25, 0.9, (~known).sum()) * span).astype(np.int64)

    lengths = _route_lengths(rng, family, known, sizes.rows[contract.ROUTE_STEPS.name])
    complexity = rng.lognormal(0.0, 0.12, n)
    route_phase = np.full((n, MAX_ROUTE), -1, dtype=np.int64)
    route_coef = np.zeros((n, MAX_ROUTE))
    route_coef_x = np.zeros((n, MAX_ROUTE))
    core_idx = np.flatnonzero(core)
    optional_idx = np.flatnonzero(~core)
    for p in range(n):
        weights = (weight_c if IS_CANOE[family[p]] else weight_k)[optional_idx]
        if family[p] in (2, 5):  # crew boats use more reinforcement, carbon and assembly
            weights = weights * np.where(np.isin(phases["phase_kind"][optional_idx], ["lam", "assembly"]), 1.6, 1.0)
        extra = rng.choice(optional_idx, size=lengths[p] - len(core_idx), replace=False, p=weights / weights.sum())
        steps = np.sort(np.concatenate([core_idx, extra]))
        route_phase[p, : len(steps)] = steps
        labour = phases["hours"][steps] * FAMILY_WORK[family[p]] * complexity[p] * rng.uniform(0.9, 1.1, len(steps))
        machine = np.where(phases["automatic"][steps], phases["hours"][steps] * rng.uniform(0.95, 1.05, len(steps)), 0.0)
        vacuum = np.isin(np.array(names, dtype=object)[steps], ["Infusão Vácuo", "Ensacamento Vácuo"])
        machine = np.where(vacuum, labour * 0.5, machine)
        route_coef[p, : len(steps)] = np.round(np.where(phases["automatic"][steps], 0.1 * labour, labour), 3)
        route_coef_x[p, : len(steps)] = np.round(machine, 3)

    finished = FAMILY_FINISHED_KG[family] * rng.uniform(0.88, 1.15, n)
    demould = finished * rng.uniform(1.05, 1.12, n)  # flash and excess trimmed off in finishing
    gel_hull = finished * rng.uniform(0.07, 0.09, n)
    gel_deck = np.where(IS_CANOE[family], 0.55, 0.65) * gel_hull * rng.uniform(0.9, 1.1, n)

    counters: dict[tuple[str, str, str], int] = {}
    product_name = []
    for p in range(n):
        fam = FAMILIES[family[p]]
        line = PRODUCT_LINES[fam[0]][rng.integers(len(PRODUCT_LINES[fam[0]]))]
        variant = PRODUCT_VARIANTS[rng.integers(len(PRODUCT_VARIANTS))]
        counters[(fam, line, variant)] = counters.get((fam, line, variant), 0) + 1
        product_name.append(f"{fam} {line} {variant} {counters[(fam, line, variant)]}")

    return Catalogue(
        **phases,
        product_ids=ids,
        product_known=known,
        product_name=product_name,
        product_family=family,
        finished_kg=np.round(finished, 2),
        demould_kg=np.round(demould, 2),
        gel_deck=np.round(gel_deck, 3),
        gel_hull=np.round(gel_hull, 3),
        complexity=complexity,
        defect_factor=rng.lognormal(0.0, 0.25, n),
        popularity=rng.lognormal(0.0, 1.0, n) * FAMILY_DEMAND[family],
        active_from=active_from,
        active_to=active_to,
        route_len=lengths,
        route_phase=route_phase,
        route_coef=route_coef,
        route_coef_x=route_coef_x,
    )


def _employees(rng, cat: Catalogue, n_employees: int, n_skills: int, as_of_min: int) -> dict[str, Any]:
    ids = (100 + np.cumsum(rng.integers(1, 4, n_employees))).astype(np.int64)
    names = [
        f"{FIRST_NAMES[a]} {SURNAMES[b]} {SURNAMES[c]}"
        for a, b, c in zip(
            rng.integers(len(FIRST_NAMES), size=n_employees),
            rng.integers(len(SURNAMES), size=n_employees),
            rng.integers(len(SURNAMES), size=n_employees),
            strict=True,
        )
    ]
    # Hands-on phases need more people: staff each phase in proportion to its labour and queue.
    staffed = cat.production & ~cat.automatic
    weight = np.where(staffed, cat.hours * cat.queue_hours + 0.5, 0.0)
    primary = rng.choice(len(PHASE_TABLE), size=n_employees, p=weight / weight.sum())
    active = rng.random(n_employees) < 0.85

    skill_emp = np.arange(n_employees)
    skill_phase = primary.copy()
    if n_skills > n_employees:
        extra_emp = rng.choice(n_employees, size=n_skills - n_employees, replace=n_skills - n_employees > n_employees)
        extra_phase = rng.choice(len(PHASE_TABLE), size=len(extra_emp), p=weight / weight.sum())
        skill_emp = np.concatenate([skill_emp, extra_emp])
        skill_phase = np.concatenate([skill_phase, extra_phase])
        pairs = np.unique(skill_emp * 1000 + skill_phase)
        skill_emp, skill_phase = pairs // 1000, pairs % 1000
        # Collisions shrink the list; top up deterministically with unused pairs.
        used = set(pairs.tolist())
        e = 0
        while len(skill_emp) < n_skills:
            for ph in np.flatnonzero(staffed):
                if len(skill_emp) >= n_skills:
                    break
                if e * 1000 + ph not in used:
                    used.add(e * 1000 + ph)
                    skill_emp = np.append(skill_emp, e)
                    skill_phase = np.append(skill_phase, ph)
            e += 1
    elif n_skills < n_employees:
        keep = np.sort(rng.choice(n_employees, size=n_skills, replace=False))
        skill_emp, skill_phase = skill_emp[keep], skill_phase[keep]
    order = np.lexsort((skill_phase, skill_emp))
    skill_emp, skill_phase = skill_emp[order], skill_phase[order]
    days_ago = rng.integers(30, 12 * 365, len(skill_emp))
    skill_since = ((as_of_min // MINUTES_PER_DAY) - days_ago) * MINUTES_PER_DAY
    return {
        "ids": ids,
        "names": names,
        "active": active.astype(np.int64),
        "primary": primary,
        "skill_emp": skill_emp,
        "skill_phase": skill_phase,
        "skill_since": skill_since,
    }


# ----------------------------------------------------------------------------------------------
# Orders: arrivals with seasonality, routes with rework, a queueing walk through the shop.
# ----------------------------------------------------------------------------------------------


def _intensity(rng, first_day: int, last_day: int) -> np.ndarray:
    """Expected orders per day (relative): season x weekday x four-week campaigns; no trend."""
    days = np.arange(first_day, last_day + 1)
    dates = days.astype("datetime64[D]")
    day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    season = 1.0 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (day_of_year - 105) / 365.25)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    weekday_weight = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.08, 0.02])[weekday]
    # Four-week campaigns (dealer orders, team orders) make the arrivals wander around the season.
    blocks = (days - first_day) // 28
    campaign = rng.lognormal(0.0, CAMPAIGN_SIGMA, blocks.max() + 1)[blocks]
    return season * weekday_weight * campaign


def _creation_times(rng, n: int, intensity: np.ndarray, start_min: int, as_of_min: int) -> np.ndarray:
    first_day = start_min // MINUTES_PER_DAY
    days = np.arange(first_day, as_of_min // MINUTES_PER_DAY + 1)
    p = intensity[: len(days)]
    day = rng.choice(days, size=n, p=p / p.sum())
    hour_weight = np.array([0, 0, 0, 0, 0, 0, 0, 2, 6, 8, 8, 7, 3, 5, 7, 7, 6, 4, 2, 1, 0, 0, 0, 0], dtype=float)
    hour = rng.choice(24, size=n, p=hour_weight / hour_weight.sum())
    minutes = day * MINUTES_PER_DAY + hour * 60 + rng.integers(0, 60, n)
    return np.sort(np.clip(minutes, start_min, as_of_min))


@dataclass(frozen=True)
class GateChange:
    """The capacity knob: from the start of `from_day` (days since 1970-01-01) the gate's capacity is `factor`
    times its usual one. Nothing before that day depends on it, so two workbooks of one seed that differ only
    in the knob hold the same events before it."""

    factor: float
    from_day: int


@dataclass(frozen=True)
class Shop:
    """The load model, a deterministic function of time (so the same at every scale).

    The gate is a fluid FIFO queue fed by the arrival intensity: backlog[d + 1] = max(0, backlog[d] +
    arrivals[d] - capacity[d]), in days of mean arrivals. An order reaching the gate at t leaves it when
    the capacity worked since t has cleared the backlog found at t. The phases' queueing factor is
    rho / (1 - rho), rho proportional to the gate's releases over the last SHOP_WINDOW_DAYS.
    """

    edges: np.ndarray  # day boundaries (minutes)
    backlog: np.ndarray  # at each boundary
    worked: np.ndarray  # cumulative capacity at each boundary
    shop_factor: np.ndarray  # per day
    capacity_factor: np.ndarray | None = None  # per day, the knob's (None: the usual capacity every day)

    @staticmethod
    def _flow(arrivals: np.ndarray, capacity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gate's backlog at each day boundary and its releases averaged over the trailing window."""
        backlog = np.zeros(len(arrivals) + 1)
        for d in range(len(arrivals)):
            backlog[d + 1] = max(0.0, backlog[d] + arrivals[d] - capacity[d])
        released = backlog[:-1] + arrivals - backlog[1:]
        kernel = np.ones(SHOP_WINDOW_DAYS) / SHOP_WINDOW_DAYS
        recent = np.convolve(np.concatenate([np.full(SHOP_WINDOW_DAYS - 1, released[:7].mean()), released]), kernel,
                             mode="valid")
        return backlog, recent

    @classmethod
    def build(cls, intensity: np.ndarray, first_day: int, days_of_history: int,
              gate_change: GateChange | None = None) -> Shop:
        days = first_day + np.arange(len(intensity))
        arrivals = intensity / intensity[:days_of_history].mean()
        capacity = np.full(len(days), GATE_HEADROOM)  # moulds set every day of the week
        backlog, recent = cls._flow(arrivals, capacity)
        # The shop's load is relative to the usual releases, whatever the knob does later: the days before
        # the change keep their load factor.
        usual = recent[:days_of_history].mean()
        factor = None
        if gate_change is not None:
            factor = np.where(days >= gate_change.from_day, gate_change.factor, 1.0)
            capacity = capacity * factor
            backlog, recent = cls._flow(arrivals, capacity)
        rho = np.clip(SHOP_UTILISATION * recent / usual, 0.3, MAX_SHOP_UTILISATION)
        return cls(
            edges=(first_day + np.arange(len(days) + 1)) * MINUTES_PER_DAY,
            backlog=backlog,
            worked=np.concatenate([[0.0], np.cumsum(capacity)]),
            shop_factor=rho / (1.0 - rho),
            capacity_factor=factor,
        )

    def _day(self, t: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(t) - self.edges[0]) // MINUTES_PER_DAY, 0, len(self.shop_factor) - 1)

    def factor(self, t: np.ndarray) -> np.ndarray:
        return self.shop_factor[self._day(t)]

    def gate_spacing_units(self, due_in_turn: np.ndarray) -> np.ndarray:
        """Cumulative gaps (in units of the usual gap) between the moulds handed out in turn: 1 per order
        at the usual capacity, 1 / factor once the knob applies (the first order: 0)."""
        if self.capacity_factor is None:
            return np.arange(len(due_in_turn), dtype=float)
        gaps = 1.0 / self.capacity_factor[self._day(due_in_turn)]
        return np.concatenate([[0.0], np.cumsum(gaps[1:])])

    def gate_release(self, t: np.ndarray, share: np.ndarray | float = 1.0) -> np.ndarray:
        """When an order reaching the gate at t leaves it (share < 1: it jumps part of the backlog)."""
        t = np.clip(t, self.edges[0], self.edges[-1])
        due = np.interp(t, self.edges, self.worked) + share * np.interp(t, self.edges, self.backlog)
        return np.maximum(t, np.rint(np.interp(due, self.worked, self.edges)).astype(np.int64))


def _products_for_orders(rng, cat: Catalogue, create: np.ndarray) -> np.ndarray:
    """Draw by popularity among products on sale at creation; every product gets at least one order."""
    n = len(create)
    p = cat.popularity / cat.popularity.sum()
    product = np.full(n, -1, dtype=np.int64)
    pending = np.arange(n)
    for _ in range(200):
        if not len(pending):
            break
        draw = rng.choice(len(p), size=len(pending), p=p)
        ok = (cat.active_from[draw] <= create[pending]) & (create[pending] <= cat.active_to[draw])
        product[pending[ok]] = draw[ok]
        pending = pending[~ok]
    product[pending] = rng.choice(len(p), size=len(pending), p=p)
    # Exact distinct match rate: each catalogue and each unknown product is ordered at least once.
    counts = np.bincount(product, minlength=len(p))
    for missing in np.flatnonzero(counts == 0):
        inside = (cat.active_from[missing] <= create) & (create <= cat.active_to[missing]) & (counts[product] > 1)
        candidates = np.flatnonzero(inside)
        if not len(candidates):
            candidates = np.flatnonzero(counts[product] > 1)
        chosen = candidates[rng.integers(len(candidates))]
        counts[product[chosen]] -= 1
        product[chosen] = missing
        counts[missing] += 1
    return product


def _order_rows(rng, cat: Catalogue, product: np.ndarray, total_rows: int) -> dict[str, np.ndarray]:
    """Each order's rows: its product's route, plus rework passes and quality events to reach total_rows."""
    n_orders = len(product)
    lens = cat.route_len[product]
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    order = np.repeat(np.arange(n_orders), lens)
    pos = np.arange(lens.sum()) - offsets[order]
    phase = cat.route_phase[product[order], pos]
    coef = cat.route_coef[product[order], pos]
    coef_x = cat.route_coef_x[product[order], pos]
    sub = np.zeros(len(order), dtype=np.int64)
    rework = np.zeros(len(order), dtype=bool)

    extra = total_rows - len(order)
    if extra < 0:
        # More route steps than rows wanted (tiny scales): orders skipped some optional steps.
        core = np.isin(np.array(cat.phase_name, dtype=object)[phase], CORE_PHASES)
        drop = rng.choice(np.flatnonzero(~core), size=-extra, replace=False)
        keep = np.ones(len(order), dtype=bool)
        keep[drop] = False
        order, pos, phase, coef, coef_x, sub, rework = (a[keep] for a in (order, pos, phase, coef, coef_x, sub, rework))
    elif extra > 0:
        family = cat.product_family[product]
        w = FAMILY_DEFECTS[family] * cat.defect_factor[product]
        e_order = rng.choice(n_orders, size=extra, p=w / w.sum())
        is_rework = rng.random(extra) < 0.6
        rw_weight = np.array([REWORK_WEIGHT.get(k, 0.0) for k in cat.phase_kind])
        rw_weight[~cat.production | cat.automatic] = 0.0
        e_pos = np.zeros(extra, dtype=np.int64)
        pending = np.flatnonzero(is_rework)
        for _ in range(500):
            if not len(pending):
                break
            cand = rng.integers(0, lens[e_order[pending]])
            ph = cat.route_phase[product[e_order[pending]], cand]
            ok = rng.random(len(pending)) < rw_weight[ph] / rw_weight.max()
            e_pos[pending[ok]] = cand[ok]
            pending = pending[~ok]
        events = np.flatnonzero(~is_rework)
        e_pos[events] = rng.integers(1, lens[e_order[events]])
        event_names = list(EXTRA_EVENT_PHASES)
        event_idx = np.array([cat.phase_name.index(name) for name in event_names])
        event_w = np.array(list(EXTRA_EVENT_PHASES.values()))
        e_phase = cat.route_phase[product[e_order], e_pos]
        e_phase[events] = rng.choice(event_idx, size=len(events), p=event_w / event_w.sum())
        e_coef = np.where(is_rework, np.round(cat.route_coef[product[e_order], e_pos] * 0.5, 3), 0.0)
        e_coef_x = np.where(is_rework, cat.route_coef_x[product[e_order], e_pos], 0.0)
        order = np.concatenate([order, e_order])
        pos = np.concatenate([pos, e_pos])
        phase = np.concatenate([phase, e_phase])
        coef = np.concatenate([coef, e_coef])
        coef_x = np.concatenate([coef_x, e_coef_x])
        sub = np.concatenate([sub, 1 + rng.integers(0, 1_000_000, extra)])
        rework = np.concatenate([rework, is_rework])
    sort = np.lexsort((sub, pos, order))
    order, pos, phase, coef, coef_x, rework = (a[sort] for a in (order, pos, phase, coef, coef_x, rework))
    lens = np.bincount(order, minlength=n_orders)
    return {
        "order": order,
        "sequence": (pos + 1) * 10,
        "phase": phase,
        "coef": coef,
        "coef_x": coef_x,
        "rework": rework,
        "lens": lens,
        "offsets": np.concatenate([[0], np.cumsum(lens)[:-1]]),
    }


def _shift_adjust(t: np.ndarray, allow_night: np.ndarray, night_draw: np.ndarray, weekend_draw: np.ndarray):
    """Push most starts out of the night shift and the weekend: the shop runs mostly 06:00-22:00 on weekdays."""
    minute = t % MINUTES_PER_DAY
    night = (minute < 360) | (minute >= 1320)
    push = night & ~allow_night & (night_draw < 0.8)
    t = np.where(push, (t // MINUTES_PER_DAY + (minute >= 1320)) * MINUTES_PER_DAY + 360, t)
    day = t // MINUTES_PER_DAY
    weekday = (day + 3) % 7
    push = (weekday >= 5) & (weekend_draw < 0.92)
    return np.where(push, (day + 7 - weekday) * MINUTES_PER_DAY + 360, t)


def _walk(rng, cat: Catalogue, rows: dict, product: np.ndarray, create: np.ndarray, shop: Shop) -> None:
    """Start and end of every row: queue then work (phase- and family-dependent).

    Steps before the gate step queue at their base time; the order then waits at the gate (the backlog it finds there, FIFO; rush orders jump most of it; a few orders wait
    for material first), and every later step queues at its base
    time times the shop's load factor. Lead time therefore depends on the product (route, work) and
    on the load the order meets, through the same mapping in every year.
    """
    phase = rows["phase"]
    n_rows = len(phase)
    family = cat.product_family[product]
    order_of_row = rows["order"]
    lens, offsets = rows["lens"], rows["offsets"]
    queue_draw = rng.gamma(4.0, 0.25, n_rows)
    work_draw = np.where(cat.automatic[phase], rng.lognormal(0.0, 0.1, n_rows), rng.lognormal(0.0, 0.35, n_rows))
    booked_as_event = rng.random(n_rows) < 0.025  # some production steps are only booked as start = end
    night_draw, weekend_draw = rng.random(n_rows), rng.random(n_rows)
    release = rng.integers(5, 90, len(create))
    rush = np.where(rng.random(len(create)) < RUSH_ORDER_RATE, RUSH_WAIT_SHARE, 1.0)
    shortage = np.where(rng.random(len(create)) < SHORTAGE_RATE,
                        np.rint(rng.exponential(SHORTAGE_MEAN_DAYS * MINUTES_PER_DAY, len(create))), 0).astype(np.int64)
    fam = family[order_of_row]
    work_h = np.where(
        cat.automatic[phase],
        cat.hours[phase] * FAMILY_WORK[fam] ** 0.3 * work_draw,
        cat.hours[phase] * FAMILY_WORK[fam] * cat.complexity[product[order_of_row]] * work_draw,
    )
    work_h = np.where(rows["rework"], 0.6 * work_h, work_h)
    work_min = np.rint(np.where(booked_as_event, 0.0, work_h) * 60).astype(np.int64)
    queue_base = cat.queue_hours[phase] * queue_draw * np.where(rows["rework"], 0.3, 1.0)  # rework jumps the queue

    # The gate step occupies a mould for most of a day, so its concurrency shows the gate's capacity.
    gate_phase = cat.phase_name.index(GATE_PHASE)
    position = np.arange(n_rows) - offsets[order_of_row]
    gate_position = np.minimum.reduceat(np.where(phase == gate_phase, position, NEVER), offsets)
    at_gate_row = position == gate_position[order_of_row]
    mould_min = np.rint(MOULD_HOURS * 60 * rng.lognormal(0.0, 0.25, n_rows)).astype(np.int64)
    work_min = np.where(at_gate_row, mould_min, work_min)
    start = np.empty(n_rows, dtype=np.int64)
    end = np.empty(n_rows, dtype=np.int64)

    def place(idx: np.ndarray, ready: np.ndarray, factor: np.ndarray | float) -> None:
        begin = ready + np.rint(queue_base[idx] * factor * 60).astype(np.int64)
        start[idx] = _shift_adjust(begin, cat.automatic[phase[idx]], night_draw[idx], weekend_draw[idx])
        end[idx] = start[idx] + work_min[idx]

    n_orders = len(create)
    gate_ready = create + release
    for j in range(1, int(gate_position.max()) + 1):  # the steps before the gate, at their base queue
        orders = np.flatnonzero(gate_position >= j)
        idx = offsets[orders] + j
        place(idx - 1, gate_ready[orders], 1.0)
        gate_ready[orders] = end[idx - 1]
    # The gate: the fluid backlog sets when each order's turn comes; one mould at a time is handed out
    # (FIFO, at least `spacing` apart), so a burst of orders spreads over the gate's capacity.
    gate_idx = offsets + gate_position
    due = shop.gate_release(gate_ready + shortage, rush)
    due = due + np.rint(queue_base[gate_idx] * shop.factor(due) * 60).astype(np.int64)
    history_days = (create.max() - create.min()) / MINUTES_PER_DAY + 1
    spacing = min(MINUTES_PER_DAY * history_days / (GATE_HEADROOM * n_orders), 120.0)
    turn = np.argsort(due, kind="stable")
    steps = np.rint(spacing * shop.gate_spacing_units(due[turn])).astype(np.int64)
    start[gate_idx[turn]] = np.maximum.accumulate(due[turn] - steps) + steps  # the mould is taken when it frees
    end[gate_idx] = start[gate_idx] + work_min[gate_idx]
    for j in range(1, int(lens.max())):  # after the gate, queues grow with the shop's load
        orders = np.flatnonzero((lens > j) & (gate_position < j))
        idx = offsets[orders] + j
        ready = end[idx - 1]
        place(idx, ready, shop.factor(ready))
    rows["start"], rows["end"] = start, end


def _orders(rng, cat: Catalogue, sizes: Sizes, start_min: int, as_of_min: int,
            gate_change: GateChange | None = None) -> tuple[dict, dict]:
    n = sizes.rows[contract.ORDERS.name] - planted_count(contract.ORDERS.name)
    n_rows = sizes.rows[contract.ORDER_PHASES.name] - planted_count(contract.ORDER_PHASES.name)
    first_day, last_day = start_min // MINUTES_PER_DAY, as_of_min // MINUTES_PER_DAY
    # The load model runs past the snapshot, for the orders still in the shop at the as-of date.
    intensity = _intensity(rng, first_day, last_day + 365)
    create = _creation_times(rng, n, intensity, start_min, as_of_min)
    shop = Shop.build(intensity, first_day, last_day - first_day + 1, gate_change)
    product = _products_for_orders(rng, cat, create)
    rows = _order_rows(rng, cat, product, n_rows)
    _walk(rng, cat, rows, product, create, shop)

    lens, offsets = rows["lens"], rows["offsets"]
    # Abandoned orders: from some step on nothing ever happens.
    old = np.flatnonzero(create < as_of_min - 60 * MINUTES_PER_DAY)
    stuck = rng.choice(old, size=min(len(old), int(round(STUCK_ORDER_RATE * n))), replace=False)
    for o in stuck:
        k = int(rng.integers(1, lens[o]))
        rows["start"][offsets[o] + k : offsets[o] + lens[o]] = NEVER
        rows["end"][offsets[o] + k : offsets[o] + lens[o]] = NEVER

    started = rows["start"] <= as_of_min
    ended = started & (rows["end"] <= as_of_min)
    rows["started"], rows["ended"] = started, ended
    position = np.arange(len(ended)) - offsets[rows["order"]]
    first_open = np.minimum.reduceat(np.where(ended, NEVER, position), offsets)
    finished = first_open == NEVER
    last = offsets + lens - 1
    current_row = np.where(finished, last, offsets + np.minimum(first_open, lens - 1))
    finish = np.where(finished, rows["end"][last], -1)

    transport = np.full(n, -1, dtype=np.int64)
    shipped = finished & (rng.random(n) < 0.62)
    ship_day = (finish // MINUTES_PER_DAY + rng.integers(1, 9, n)) * MINUTES_PER_DAY
    shipped &= ship_day <= as_of_min
    transport[shipped] = ship_day[shipped]

    ids = FIRST_ORDER_ID + np.cumsum(1 + (rng.random(n) < 0.03) * rng.integers(1, 5, n))
    orders = {
        "ids": ids.astype(np.int64),
        "create": create,
        "finish": finish,
        "product": product,
        "current_phase": rows["phase"][current_row],
        "transport": transport,
        "factor": shop.factor,
    }
    rows["ids"] = FIRST_ORDER_PHASE_ID + np.cumsum(1 + (rng.random(len(ended)) < 0.02) * rng.integers(1, 4, len(ended)))
    return orders, rows


def _assignments(rng, cat: Catalogue, emp: dict, rows: dict, n_rows: int) -> dict[str, np.ndarray]:
    """Teams per order phase; only 32.3% of the distinct phase ids they name exist in the export."""
    n_emp = len(emp["ids"])
    distinct = max(1, round(n_rows / TEAM_SIZE_MEAN))
    matched_target = round(contract.REAL_MATCH_RATES[(contract.ASSIGNMENTS.name, "FuncionarioFaseOf_FaseOfId")] * distinct)
    eligible = np.flatnonzero(rows["started"] & cat.production[rows["phase"]])
    matched = np.sort(rng.choice(eligible, size=min(matched_target, len(eligible)), replace=False))
    n_legacy = distinct - len(matched)
    low, high = LEGACY_ORDER_PHASE_IDS
    legacy_ids = low + rng.choice(high - low, size=n_legacy, replace=False)

    cap = min(n_emp, 12)
    team = 1 + np.bincount(rng.integers(0, distinct, n_rows - distinct), minlength=distinct)
    while team.max() > cap:  # never more people in a team than exist (or than a phase needs)
        over = team > cap
        surplus = int((team[over] - cap).sum())
        team[over] = cap
        np.add.at(team, rng.choice(np.flatnonzero(team < cap), size=surplus), 1)
    fase_ids = np.concatenate([rows["ids"][matched], legacy_ids])
    phase = np.concatenate([rows["phase"][matched], rng.choice(len(PHASE_TABLE), size=n_legacy)])
    order = np.argsort(fase_ids, kind="stable")
    fase_ids, phase = fase_ids[order], phase[order]

    # People come from the pool skilled in the phase when it is big enough, else from everyone.
    by_phase = np.argsort(emp["primary"], kind="stable")
    pool_start = np.searchsorted(emp["primary"][by_phase], np.arange(len(PHASE_TABLE)))
    pool_size = np.bincount(emp["primary"], minlength=len(PHASE_TABLE))
    member = np.repeat(np.arange(distinct), team)
    slot = np.arange(len(member)) - np.repeat(np.cumsum(team) - team, team)
    use_pool = pool_size[phase] >= team
    size = np.where(use_pool, pool_size[phase], n_emp)
    base = rng.integers(0, np.maximum(size, 1))
    within = (base[member] + slot) % size[member]
    employee = np.where(use_pool[member], by_phase[np.minimum(pool_start[phase][member] + within, n_emp - 1)], within)
    leader = (slot == 0) & ((team[member] > 1) | (rng.random(len(member)) < 0.3))
    return {
        "fase_of_id": fase_ids[member],
        "employee": emp["ids"][employee],
        "leader": leader.astype(np.int64),
        "distinct": distinct,
        "matched": len(matched),
    }


def _errors(rng, cat: Catalogue, rows: dict, orders: dict, n_errors: int, culprit_filled: int) -> dict[str, Any]:
    """Defects found at evaluation phases, caused by an earlier production phase of the same order."""
    eval_weight = np.array([EVALUATION_WEIGHT.get(name, 0.0) for name in cat.phase_name])
    family = cat.product_family[orders["product"]]
    row_order = rows["order"]
    w = eval_weight[rows["phase"]] * rows["started"]
    # Rushed periods breed defects: the shop's load factor at the start of the evaluation.
    load = orders["factor"](np.where(rows["started"], rows["start"], 0))
    w = w * FAMILY_DEFECTS[family[row_order]] * cat.defect_factor[orders["product"][row_order]] * (0.6 + 0.3 * load)
    evaluation = np.sort(rng.choice(len(w), size=n_errors, p=w / w.sum()))

    culprit_weight = np.array([CULPRIT_WEIGHT.get(k, 0.0) for k in cat.phase_kind])
    culprit_weight[~cat.production] = 0.0
    first = rows["offsets"][row_order[evaluation]]
    culprit = evaluation.copy()
    pending = np.flatnonzero(evaluation > first)
    for _ in range(300):
        if not len(pending):
            break
        cand = rng.integers(first[pending], evaluation[pending])
        ok = rng.random(len(pending)) < culprit_weight[rows["phase"][cand]] / culprit_weight.max()
        culprit[pending[ok]] = cand[ok]
        pending = pending[~ok]

    kinds = cat.phase_kind[rows["phase"][culprit]]
    descriptions = np.empty(n_errors, dtype=object)
    severity = np.empty(n_errors, dtype=np.int64)
    shift = FAMILY_SEVERITY_SHIFT[family[row_order[evaluation]]]
    u = rng.random(n_errors)
    pick = rng.random(n_errors)
    for kind in np.unique(kinds):
        sel = np.flatnonzero(kinds == kind)
        options = DEFECTS.get(str(kind), DEFECTS["inspect"])
        choice = (pick[sel] * len(options)).astype(int)
        for k, (text, probs) in enumerate(options):
            hit = sel[choice == k]
            descriptions[hit] = text
            p1 = probs[0] - shift[hit]
            p2 = probs[1]
            severity[hit] = 1 + (u[hit] >= p1) + (u[hit] >= p1 + p2)
    filled = np.zeros(n_errors, dtype=bool)
    filled[rng.choice(n_errors, size=culprit_filled, replace=False)] = True
    return {
        "description": descriptions,
        "order_id": orders["ids"][row_order[evaluation]],
        "evaluation_phase": cat.phase_ids[rows["phase"][evaluation]],
        "severity": severity,
        "evaluation_row": rows["ids"][evaluation],
        "culprit_row": rows["ids"][culprit],
        "culprit_filled": filled,
    }


# ----------------------------------------------------------------------------------------------
# Writing: columns with per-cell styles, planted rows, one streaming pass per sheet.
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Entry point.
# ----------------------------------------------------------------------------------------------


def manifest_path(out_path: str | Path) -> Path:
    out = Path(out_path)
    return out.with_name(out.stem + ".manifest.json")


def _setup(scale: float, seed: int, as_of: str | datetime):
    as_of_dt = parse_as_of(as_of)
    as_of_min = int(np.datetime64(as_of_dt.replace(second=0, microsecond=0), "m").astype(np.int64))
    start_min = (as_of_min // MINUTES_PER_DAY - YEARS_OF_HISTORY * 365) * MINUTES_PER_DAY
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    return as_of_dt, as_of_min, start_min, sizes_for(scale), streams


GATE_FACTOR_RANGE = (0.1, 10.0)


def gate_change_for(factor: float | None, from_date: str | date | None, *, start_min: int,
                    as_of_min: int) -> GateChange | None:
    """The knob's arguments checked: both or neither; a factor in GATE_FACTOR_RANGE; a date inside the history
    (after its first day, on or before the as-of day). ValueError naming the argument otherwise."""
    if factor is None and from_date is None:
        return None
    if factor is None or from_date is None:
        raise ValueError("gate capacity: give both the factor and the date it applies from")
    low, high = GATE_FACTOR_RANGE
    if not low <= factor <= high:
        raise ValueError(f"gate capacity factor must be from {low} to {high} (got {factor})")
    try:
        day = from_date if isinstance(from_date, date) else date.fromisoformat(str(from_date).strip())
    except ValueError as exc:
        raise ValueError(f"gate capacity date must be YYYY-MM-DD (got {from_date!r})") from exc
    if isinstance(day, datetime):
        day = day.date()
    from_day = int(np.datetime64(day, "D").astype(np.int64))
    first, last = start_min // MINUTES_PER_DAY, as_of_min // MINUTES_PER_DAY
    if not first < from_day <= last:
        raise ValueError(f"gate capacity date must lie inside the history, after {_day_text(first)} and on or before "
                         f"the as-of day {_day_text(last)} (got {day.isoformat()})")
    return GateChange(factor=float(factor), from_day=from_day)


def _day_text(day: int) -> str:
    return str(np.datetime64(day, "D"))


def _mean_arrivals_per_day(orders: dict, start_min: int, as_of_min: int) -> float:
    """Orders created per day over the history: the unit of the gate's capacity (GATE_HEADROOM of them a day)."""
    return len(orders["create"]) * MINUTES_PER_DAY / max(as_of_min - start_min, MINUTES_PER_DAY)


def order_history(*, scale: float = 1.0, seed: int = 42, as_of: str | datetime = "2025-12-15",
                  gate_capacity_factor: float | None = None,
                  gate_capacity_from: str | date | None = None) -> dict[str, np.ndarray]:
    """The valid orders the workbook of these arguments holds, without writing it (for checks of its structure).

    Times are datetime64[m] (NaT: open); family is the index into FAMILIES; known: product in the catalogue.
    """
    _, as_of_min, start_min, sizes, streams = _setup(scale, seed, as_of)
    gate_change = gate_change_for(gate_capacity_factor, gate_capacity_from, start_min=start_min, as_of_min=as_of_min)
    cat = _catalogue(streams[0], sizes, start_min, as_of_min)
    orders, _rows = _orders(streams[2], cat, sizes, start_min, as_of_min, gate_change)
    return {
        "created": _minutes(orders["create"]),
        "finished": _minutes(orders["finish"]),
        "product_id": cat.product_ids[orders["product"]],
        "family": cat.product_family[orders["product"]],
        "known": cat.product_known[orders["product"]],
    }


def generate_demo_workbook(out_path: str | Path, *, scale: float = 1.0, seed: int = 42,
                           as_of: str | datetime = "2025-12-15", started_phase_rows_only: bool = False,
                           gate_capacity_factor: float | None = None,
                           gate_capacity_from: str | date | None = None) -> dict[str, Any]:
    """Write the demo workbook and its manifest; returns the manifest.

    started_phase_rows_only: the other export shape the contract allows, where the ERP creates a phase row
    only when work on it starts: FasesOrdemFabrico holds no row with both FaseOf_Inicio and FaseOf_Fim empty.
    The rows kept are the default file's rows (the same random draws; rows are dropped after them).

    gate_capacity_factor / gate_capacity_from (both or neither): the gate phase's (GATE_PHASE) capacity is
    multiplied by the factor from the start of that day on. Two workbooks of one seed that differ only in the
    factor hold the same orders and the same phase rows (ids, times, cells) for every phase row whose work was
    ready before that day; after it, the gate releases work at the new rate and everything downstream follows.
    With the knob, which started rows carry a planned date is drawn row by row (not as an exact count), so
    that choice does not depend on what started after the date; the team and quality-error sheets are drawn
    from the started rows and differ between the two files. Without the knob the file is unchanged.
    """
    out_path = Path(out_path)
    as_of_dt, as_of_min, start_min, sizes, streams = _setup(scale, seed, as_of)
    gate_change = gate_change_for(gate_capacity_factor, gate_capacity_from, start_min=start_min, as_of_min=as_of_min)
    rng_cat, rng_emp, rng_orders, rng_assign, rng_errors, rng_style, rng_plant, _spare = streams

    cat = _catalogue(rng_cat, sizes, start_min, as_of_min)
    emp = _employees(rng_emp, cat, sizes.rows[contract.EMPLOYEES.name], sizes.rows[contract.SKILLS.name], as_of_min)
    orders, rows = _orders(rng_orders, cat, sizes, start_min, as_of_min, gate_change)
    n_assign = sizes.rows[contract.ASSIGNMENTS.name] - planted_count(contract.ASSIGNMENTS.name)
    assign = _assignments(rng_assign, cat, emp, rows, n_assign)
    n_err_rows = sizes.rows[contract.ERRORS.name]
    n_err_planted = planted_count(contract.ERRORS.name)
    planted_culprits = round(contract.CULPRIT_FILL_RATE * n_err_planted)
    errors = _errors(rng_errors, cat, rows, orders, n_err_rows - n_err_planted,
                     round(contract.CULPRIT_FILL_RATE * n_err_rows) - planted_culprits)

    sheets = _columns(rng_style, cat, emp, orders, rows, assign, errors, sizes, as_of_min,
                      planned_row_by_row=gate_change is not None)
    plants = _planted_rows(rng_plant, sheets, rows, errors, orders, planted_culprits)
    if started_phase_rows_only:  # after every random draw: the default file is unchanged by the option
        dropped_phase_rows = _keep_started_phase_rows(sheets, plants, rows)

    wanted = {
        contract.ORDERS.name: {"Of_ProdutoId": True},
        contract.PRODUCTS.name: {"Produto_Id": True},
        contract.ORDER_PHASES.name: {"FaseOf_Id": True, "FaseOf_DataPrevista": False},
        contract.ASSIGNMENTS.name: {"FuncionarioFaseOf_FaseOfId": True},
        contract.ERRORS.name: {"Erro_FaseOfCulpada": False},
    }
    watches = {sheet: {col: _Watch(ids) for col, ids in cols.items()} for sheet, cols in wanted.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=True)
    written = {}
    for sheet in contract.REAL_ROW_COUNTS:  # the order of the contract's table
        spec = contract.SHEETS_BY_NAME[sheet]
        written[sheet] = _write_sheet(wb, spec, sheets[sheet], plants.get(sheet, []), watches.get(sheet, {}))
    _save(wb, out_path, as_of_dt)

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 6) if whole else None

    product_ids = watches[contract.ORDERS.name]["Of_ProdutoId"].ids
    catalogue_ids = watches[contract.PRODUCTS.name]["Produto_Id"].ids
    assignment_ids = watches[contract.ASSIGNMENTS.name]["FuncionarioFaseOf_FaseOfId"].ids
    phase_row_ids = watches[contract.ORDER_PHASES.name]["FaseOf_Id"].ids
    planned = watches[contract.ORDER_PHASES.name]["FaseOf_DataPrevista"]
    culprit = watches[contract.ERRORS.name]["Erro_FaseOfCulpada"]
    rates = {
        "FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FaseOfId -> FasesOrdemFabrico.FaseOf_Id": {
            "measure": "matched distinct values / distinct values",
            "target": contract.REAL_MATCH_RATES[(contract.ASSIGNMENTS.name, "FuncionarioFaseOf_FaseOfId")],
            "achieved": rate(len(assignment_ids & phase_row_ids), len(assignment_ids)),
            "matched": len(assignment_ids & phase_row_ids),
            "distinct": len(assignment_ids),
        },
        "OrdensFabrico.Of_ProdutoId -> Modelos.Produto_Id": {
            "measure": "matched distinct values / distinct values",
            "target": contract.REAL_MATCH_RATES[(contract.ORDERS.name, "Of_ProdutoId")],
            "achieved": rate(len(product_ids & catalogue_ids), len(product_ids)),
            "matched": len(product_ids & catalogue_ids),
            "distinct": len(product_ids),
        },
        "FasesOrdemFabrico.FaseOf_DataPrevista filled": {
            "measure": "filled cells / rows",
            "target": contract.PLANNED_DATE_FILL_RATE,
            "achieved": rate(planned.filled, planned.rows),
            "filled": planned.filled,
            "rows": planned.rows,
        },
        "OrdemFabricoErros.Erro_FaseOfCulpada filled": {
            "measure": "filled cells / rows",
            "target": contract.CULPRIT_FILL_RATE,
            "achieved": rate(culprit.filled, culprit.rows),
            "filled": culprit.filled,
            "rows": culprit.rows,
        },
    }
    manifest = {
        "workbook": out_path.name,
        "generator": "ingestion.demo",
        "args": {"scale": scale, "seed": seed, "as_of": as_of if isinstance(as_of, str) else as_of.isoformat()},
        "as_of": as_of_dt.isoformat(),
        "history_start": _minutes(np.array([start_min]))[0].astype(object).isoformat(),
        "sheets": written,
        "planted_reject_counts": {
            sheet: {reason: len(rows_) for reason, rows_ in info["planted_rejects"].items()}
            for sheet, info in written.items()
            if info["planted_rejects"]
        },
        "planted_rates": rates,
        "open_orders": int((orders["finish"] < 0).sum()),
    }
    if gate_change is not None:  # only then: the default manifest keeps its bytes
        manifest["args"]["gate_capacity_factor"] = gate_change.factor
        manifest["args"]["gate_capacity_from"] = _day_text(gate_change.from_day)
        manifest["gate_capacity"] = {
            "phase": GATE_PHASE, "phase_id": int(cat.phase_ids[cat.phase_name.index(GATE_PHASE)]),
            "factor": gate_change.factor, "from": _day_text(gate_change.from_day),
            "usual_capacity_per_day": round(GATE_HEADROOM * _mean_arrivals_per_day(orders, start_min, as_of_min), 4),
        }
    if started_phase_rows_only:  # only then: the default manifest keeps its bytes
        manifest["args"]["started_phase_rows_only"] = True
        manifest["started_phase_rows_only"] = True
        manifest["not_started_phase_rows_dropped"] = dropped_phase_rows
        with_rows = np.bincount(rows["order"][rows["started"]], minlength=len(orders["ids"])) > 0
        manifest["open_orders_without_phase_rows"] = int(((orders["finish"] < 0) & ~with_rows).sum())
    manifest_path(out_path).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest


def _columns(rng, cat, emp, orders, rows, assign, errors, sizes: Sizes, as_of_min: int,
             planned_row_by_row: bool = False) -> dict[str, dict[str, Col]]:
    """Every sheet's valid rows as typed columns with their cell styles (the measured quirks).

    planned_row_by_row: each started row carries a planned date with the same probability (one draw per row), so
    which rows do never depends on how many others started; otherwise exactly the target count is drawn."""
    phase_id = cat.phase_ids
    n_phases = len(phase_id)
    sheets: dict[str, dict[str, Col]] = {}
    sheets[contract.PHASES.name] = {
        "Fase_Id": Col(phase_id, style=_id_style(rng, n_phases)),
        "Fase_Nome": Col(np.array(cat.phase_name, dtype=object)),
        "Fase_Sequencia": Col((np.arange(n_phases) + 1) * 10),
        "Fase_DeProducao": Col(cat.production.astype(np.int64)),
        "Fase_Automatica": Col(cat.automatic.astype(np.int64)),
    }
    known = np.flatnonzero(cat.product_known)
    sheets[contract.PRODUCTS.name] = {
        "Produto_Id": Col(cat.product_ids[known], style=_id_style(rng, len(known))),
        "Produto_Nome": Col(np.array(cat.product_name, dtype=object)[known]),
        "Produto_PesoDesmolde": Col(cat.demould_kg[known], decimals=2),
        "Produto_PesoAcabamento": Col(cat.finished_kg[known], decimals=2),
        "Produto_QtdGelDeck": Col(cat.gel_deck[known], decimals=3),
        "Produto_QtdGelCasco": Col(cat.gel_hull[known], decimals=3),
    }
    steps_product = np.repeat(known, cat.route_len[known])
    steps_pos = np.arange(len(steps_product)) - np.repeat(np.cumsum(cat.route_len[known]) - cat.route_len[known],
                                                          cat.route_len[known])
    n_steps = len(steps_product)
    sheets[contract.ROUTE_STEPS.name] = {
        "ProdutoFase_ProdutoId": Col(cat.product_ids[steps_product], style=_id_style(rng, n_steps)),
        "ProdutoFase_FaseId": Col(phase_id[cat.route_phase[steps_product, steps_pos]], style=_id_style(rng, n_steps)),
        "ProdutoFase_Sequencia": Col((steps_pos + 1) * 10),
        "ProdutoFase_Coeficiente": Col(cat.route_coef[steps_product, steps_pos], decimals=3),
        "ProdutoFase_CoeficienteX": Col(cat.route_coef_x[steps_product, steps_pos], decimals=3),
    }
    n_emp = len(emp["ids"])
    sheets[contract.EMPLOYEES.name] = {
        "Funcionario_Id": Col(emp["ids"], style=_id_style(rng, n_emp)),
        "Funcionario_Nome": Col(np.array(emp["names"], dtype=object)),
        "Funcionario_Activo": Col(emp["active"]),
    }
    n_skills = len(emp["skill_emp"])
    sheets[contract.SKILLS.name] = {
        "FuncionarioFase_FuncionarioId": Col(emp["ids"][emp["skill_emp"]], style=_id_style(rng, n_skills)),
        "FuncionarioFase_FaseId": Col(phase_id[emp["skill_phase"]], style=_id_style(rng, n_skills)),
        "FuncionarioFase_Inicio": Col(_minutes(emp["skill_since"]), style=_date_style(rng, n_skills, None, date_only=True)),
    }

    n = len(orders["ids"])
    open_ = orders["finish"] < 0
    no_transport = orders["transport"] < 0
    sheets[contract.ORDERS.name] = {
        "Of_Id": Col(orders["ids"], style=_id_style(rng, n)),
        "Of_DataCriacao": Col(_minutes(orders["create"]), style=_date_style(rng, n, None)),
        "Of_DataAcabamento": Col(_minutes(orders["finish"]), empty=open_, style=_date_style(rng, n, open_, nulls=True)),
        "Of_ProdutoId": Col(cat.product_ids[orders["product"]], style=_id_style(rng, n)),
        "Of_FaseId": Col(phase_id[orders["current_phase"]], style=_id_style(rng, n)),
        "Of_DataTransporte": Col(_minutes(orders["transport"]), empty=no_transport,
                                 style=_date_style(rng, n, no_transport, date_only=True, nulls=True)),
    }

    m = len(rows["ids"])
    started, ended = rows["started"], rows["ended"]
    not_started, not_ended = ~started, ~ended
    start = np.where(started, rows["start"], -1)
    end = np.where(ended, rows["end"], -1)
    # Inicio and Fim of a row share their text style, so a zero-length phase never reads as Fim < Inicio.
    shared = _date_style(rng, m, None)
    planned_style = _date_style(rng, m, None, date_only=True)
    start_style = np.where(not_started, _null_style(rng, not_started), shared).astype(np.int8)
    end_style = np.where(not_ended, _null_style(rng, not_ended), shared).astype(np.int8)
    planned = np.zeros(m, dtype=bool)
    n_planned = round(contract.PLANNED_DATE_FILL_RATE * sizes.rows[contract.ORDER_PHASES.name])
    if planned_row_by_row:
        planned = started & (rng.random(m) < n_planned / m)
    else:
        planned[rng.choice(np.flatnonzero(started), size=n_planned, replace=False)] = True
    # The plan was the start day, give or take a few days, never later than the snapshot.
    plan_day = rows["start"] // MINUTES_PER_DAY + np.rint(rng.normal(-0.5, 2.0, m)).astype(np.int64)
    plan = np.where(planned, np.minimum(plan_day, as_of_min // MINUTES_PER_DAY) * MINUTES_PER_DAY, -1)
    minute = rows["start"] % MINUTES_PER_DAY
    shift = np.where(minute < 360, 3, np.where(minute < 840, 1, np.where(minute < 1320, 2, 3)))
    product_of_row = orders["product"][rows["order"]]
    phase_position = rows["phase"]
    after_demould = phase_position > cat.phase_name.index("Desmoldagem Deck")
    unit_weight = np.where(after_demould, cat.finished_kg[product_of_row], cat.demould_kg[product_of_row])
    weight = unit_weight * rng.normal(1.0, 0.02, m)
    admin = ~cat.production[rows["phase"]]
    sheets[contract.ORDER_PHASES.name] = {
        "FaseOf_Id": Col(rows["ids"], style=_id_style(rng, m)),
        "FaseOf_OfId": Col(orders["ids"][rows["order"]], style=_id_style(rng, m)),
        "FaseOf_Inicio": Col(_minutes(start), empty=not_started, style=start_style),
        "FaseOf_Fim": Col(_minutes(end), empty=not_ended, style=end_style),
        "FaseOf_DataPrevista": Col(_minutes(plan), empty=~planned,
                                   style=np.where(planned, planned_style, _null_style(rng, ~planned)).astype(np.int8)),
        "FaseOf_Coeficiente": Col(rows["coef"], decimals=3),
        "FaseOf_CoeficienteX": Col(rows["coef_x"], decimals=3),
        "FaseOf_FaseId": Col(phase_id[rows["phase"]], style=_id_style(rng, m)),
        "FaseOf_Peso": Col(weight, empty=admin, style=_null_style(rng, admin), decimals=2),
        "FaseOf_Retorno": Col(rows["rework"].astype(np.int64)),
        "FaseOf_Turno": Col(shift, empty=not_started, style=_null_style(rng, not_started)),
        "FaseOf_Sequencia": Col(rows["sequence"]),
    }

    a = len(assign["fase_of_id"])
    sheets[contract.ASSIGNMENTS.name] = {
        "FuncionarioFaseOf_FaseOfId": Col(assign["fase_of_id"], style=_id_style(rng, a)),
        "FuncionarioFaseOf_FuncionarioId": Col(assign["employee"], style=_id_style(rng, a)),
        "FuncionarioFaseOf_Chefe": Col(assign["leader"]),
    }

    e = len(errors["order_id"])
    no_culprit = ~errors["culprit_filled"]
    sheets[contract.ERRORS.name] = {
        "Erro_Descricao": Col(errors["description"]),
        "Erro_OfId": Col(errors["order_id"], style=_id_style(rng, e)),
        "Erro_FaseAvaliacao": Col(errors["evaluation_phase"], style=_id_style(rng, e)),
        "OFCH_GRAVIDADE": Col(errors["severity"]),
        "Erro_FaseOfAvaliacao": Col(errors["evaluation_row"], style=_id_style(rng, e)),
        "Erro_FaseOfCulpada": Col(errors["culprit_row"], empty=no_culprit,
                                  style=np.where(no_culprit, _null_style(rng, no_culprit), _id_style(rng, e))
                                  .astype(np.int8)),
    }
    return sheets


def _keep_started_phase_rows(sheets: dict[str, dict[str, Col]], plants: dict[str, list[Planted]], rows: dict) -> int:
    """Drop the phase rows not started by the snapshot (both Inicio and Fim empty); returns how many.

    Nothing else points at a dropped row, so no other sheet loses rows and every planted rate keeps its
    meaning: errors are found at started phases and blamed on earlier phases of the same order (started
    before them), matched assignments name started production phases, and legacy assignment ids lie below
    every exported phase id. A planted reject copied from a not-started row is copied instead from the
    nearest earlier started, unplanned row (so it still holds its one defect, and a duplicate key still
    repeats a row that is written before it); its anchor moves to the last kept row at or before it.
    """
    started = rows["started"]
    dropped_ids = rows["ids"][~started]
    for sheet, column in ((contract.ASSIGNMENTS.name, "FuncionarioFaseOf_FaseOfId"),
                          (contract.ERRORS.name, "Erro_FaseOfAvaliacao"), (contract.ERRORS.name, "Erro_FaseOfCulpada")):
        col = sheets[sheet][column]
        named = col.values if col.empty is None else col.values[~col.empty]
        if np.isin(named, dropped_ids).any():  # pragma: no cover - a guard on the generator's own invariants
            raise RuntimeError(f"{sheet}.{column} points at a not-started phase row")

    phases = sheets[contract.ORDER_PHASES.name]
    planted = plants[contract.ORDER_PHASES.name]
    candidates = np.flatnonzero(started & phases["FaseOf_DataPrevista"].empty)
    used = {p.source for p in planted if started[p.source]}
    for plant in planted:
        if started[plant.source]:
            continue
        free = candidates[~np.isin(candidates, np.fromiter(used, dtype=np.int64, count=len(used)))]
        earlier = free[free <= plant.source]
        plant.source = int(earlier[-1] if len(earlier) else free[0])
        used.add(plant.source)
        if plant.reason == "duplicate_key":
            plant.anchor = max(plant.anchor, plant.source)
        _fill_planted(contract.ORDER_PHASES, phases, plant)
    last_kept = np.cumsum(started) - 1  # new index of the last kept row at or before each row (-1: none)
    for plant in planted:
        plant.anchor = int(last_kept[plant.anchor]) if plant.anchor >= 0 else -1
    sheets[contract.ORDER_PHASES.name] = {
        header: Col(col.values[started], None if col.empty is None else col.empty[started],
                    None if col.style is None else col.style[started], col.decimals)
        for header, col in phases.items()
    }
    return int((~started).sum())


def _planted_rows(rng, sheets, rows, errors, orders, planted_culprits: int) -> dict[str, list[Planted]]:
    """Planted rejects of the big sheets; fresh ids sit far above every real id, so nothing points at them."""
    phases = sheets[contract.ORDER_PHASES.name]
    unplanned_mask = phases["FaseOf_DataPrevista"].empty
    unplanned = np.flatnonzero(unplanned_mask)
    timed = np.flatnonzero(rows["ended"] & (rows["end"] > rows["start"]) & unplanned_mask)
    n_orders = len(orders["ids"])
    n_assign = len(sheets[contract.ASSIGNMENTS.name]["FuncionarioFaseOf_Chefe"].values)
    n_errors = len(errors["order_id"])
    plants = {
        contract.ORDERS.name: _plant(rng, contract.ORDERS, sheets[contract.ORDERS.name],
                                     {"any": np.arange(n_orders)}, int(orders["ids"].max()) + 1000),
        contract.ORDER_PHASES.name: _plant(rng, contract.ORDER_PHASES, phases,
                                           {"any": unplanned, "end_before_start": timed},
                                           int(rows["ids"].max()) + 1000),
        contract.ASSIGNMENTS.name: _plant(rng, contract.ASSIGNMENTS, sheets[contract.ASSIGNMENTS.name],
                                          {"any": np.arange(n_assign)}, None),
        contract.ERRORS.name: _plant(rng, contract.ERRORS, sheets[contract.ERRORS.name],
                                     {"any": np.arange(n_errors)}, None),
    }
    # Planted error rows keep the culprit fill rate: the first few name a culprit, the rest do not.
    headers = contract.ERRORS.headers
    culprit_j = headers.index("Erro_FaseOfCulpada")
    evaluation_j = headers.index("Erro_FaseOfAvaliacao")
    for k, plant in enumerate(plants[contract.ERRORS.name]):
        plant.cells[culprit_j] = plant.cells[evaluation_j] if k < planted_culprits else None
    return plants
