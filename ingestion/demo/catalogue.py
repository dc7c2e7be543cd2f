"""The demo catalogue: phases, products and their standard routes, employees and skills."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ingestion import contract
from ingestion.demo.factory import (
    CORE_PHASES,
    FAMILIES,
    FAMILY_DEMAND,
    FAMILY_FINISHED_KG,
    FAMILY_PRODUCT_SHARE,
    FAMILY_ROUTE_MEAN,
    FAMILY_WORK,
    FIRST_NAMES,
    IS_CANOE,
    MAX_ROUTE,
    MIN_ROUTE,
    PHASE_TABLE,
    PRODUCT_LINES,
    PRODUCT_VARIANTS,
    SURNAMES,
)
from ingestion.demo.shape import MINUTES_PER_DAY, Sizes


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
