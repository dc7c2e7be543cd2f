"""Identify special catalogue phases (demoulding, gelcoat) by name, with the rule stated in every response."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Substrings looked for in the normalised phase name (Portuguese and English spellings).
DEMOULDING_MARKERS = ("desmold", "demould", "demold")
GELCOAT_MARKERS = ("gelcoat",)  # "gel coat" / "gel-coat" normalise to "gelcoat"


def normalise_name(name: str | None) -> str:
    """Lower case, accents stripped, spaces/hyphens/underscores removed: 'Gel-Coat Casco' -> 'gelcoatcasco'."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[\s\-_./]+", "", text)


@dataclass(frozen=True)
class PhaseMatch:
    kind: str
    markers: tuple[str, ...]
    phases: list[dict]  # [{"phase_id", "name"}]

    @property
    def ids(self) -> list[int]:
        return [p["phase_id"] for p in self.phases]

    def rule(self) -> dict:
        return {
            "kind": self.kind,
            "rule": (
                "catalogue phases whose name, lower-cased with accents, spaces and hyphens removed, "
                f"contains any of {list(self.markers)}"
            ),
            "matched_phases": self.phases,
        }


def match_phases(catalogue: list[tuple[int, str]], kind: str) -> PhaseMatch:
    """The phases of `catalogue` [(id, name)] that are of `kind` ('demoulding' or 'gelcoat')."""
    markers = {"demoulding": DEMOULDING_MARKERS, "gelcoat": GELCOAT_MARKERS}[kind]
    phases = [
        {"phase_id": phase_id, "name": name}
        for phase_id, name in catalogue
        if any(marker in normalise_name(name) for marker in markers)
    ]
    return PhaseMatch(kind=kind, markers=markers, phases=sorted(phases, key=lambda p: p["phase_id"]))


def catalogue_phases() -> list[tuple[int, str]]:
    """All catalogue phases as (id, name): one small query (the catalogue has ~71 rows)."""
    from orders.models import Phase

    return list(Phase.objects.order_by("id").values_list("id", "name"))
