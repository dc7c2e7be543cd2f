"""Identify special catalogue phases (demoulding, gelcoat) by name, with the rule stated in every response."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from orders.models import Phase

# Substrings looked for in the normalised phase name (Portuguese and English spellings).
DEMOULDING_MARKERS = ("desmold", "demould", "demold")
GELCOAT_MARKERS = ("gelcoat",)  # "gel coat" / "gel-coat" normalise to "gelcoat"
# Words naming another operation on the same material: release agent ("Aplicação Desmoldante"), curing
# ("Cura Gelcoat"), repair ("Reparação Gelcoat"), inspection ("Inspeção Visual Desmoldagem").
EXCLUDED_WORDS = ("desmoldante", "desmoldantes", "cura", "cure", "curing", "release")
EXCLUDED_PREFIXES = ("repar", "inspec")


def name_words(name: str | None) -> list[str]:
    """Lower-case, accent-free words of a name: 'Inspeção Visual' -> ['inspecao', 'visual']."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return [w for w in re.split(r"[^0-9a-z]+", text) if w]


def normalise_name(name: str | None) -> str:
    """Lower case, accents stripped, spaces/hyphens/underscores removed: 'Gel-Coat Casco' -> 'gelcoatcasco'."""
    return "".join(name_words(name))


def excluding_word(name: str | None) -> str | None:
    """The word that marks the phase as another operation on the material (release agent, cure, repair…)."""
    for word in name_words(name):
        if word in EXCLUDED_WORDS or word.startswith(EXCLUDED_PREFIXES):
            return word
    return None


@dataclass(frozen=True)
class PhaseMatch:
    kind: str
    markers: tuple[str, ...]
    phases: list[dict]  # [{"phase_id", "name"}]
    excluded: list[dict]  # named with a marker but excluded: [{"phase_id", "name", "because"}]

    @property
    def ids(self) -> list[int]:
        return [p["phase_id"] for p in self.phases]

    def rule(self) -> dict:
        return {
            "kind": self.kind,
            "rule": (
                "catalogue phases whose name, lower-cased with accents, spaces and hyphens removed, "
                f"contains any of {list(self.markers)}, unless a word of the name names another operation "
                f"on the material: one of {list(EXCLUDED_WORDS)} or starting with {list(EXCLUDED_PREFIXES)} "
                "(release agent, curing, repair, inspection)"
            ),
            "matched_phases": self.phases,
            "excluded_phases": self.excluded,
        }


def match_phases(catalogue: list[tuple[int, str]], kind: str) -> PhaseMatch:
    """The phases of `catalogue` [(id, name)] that are of `kind` ('demoulding' or 'gelcoat')."""
    markers = {"demoulding": DEMOULDING_MARKERS, "gelcoat": GELCOAT_MARKERS}[kind]
    phases, excluded = [], []
    for phase_id, name in sorted(catalogue, key=lambda p: p[0]):
        if not any(marker in normalise_name(name) for marker in markers):
            continue
        because = excluding_word(name)
        if because:
            excluded.append({"phase_id": phase_id, "name": name, "because": because})
        else:
            phases.append({"phase_id": phase_id, "name": name})
    return PhaseMatch(kind=kind, markers=markers, phases=phases, excluded=excluded)


def catalogue_phases() -> list[tuple[int, str]]:
    """All catalogue phases as (id, name): one small query (the catalogue has ~71 rows)."""
    return list(Phase.objects.order_by("id").values_list("id", "name"))
