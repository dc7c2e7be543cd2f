"""Supervisor page of SmartInventory: WIP mass by phase and theoretical gelcoat use by month (both theoretical)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from inventory import selectors
from prodplan.gates import NOT_SUPPORTED
from prodplan.pages import chart, widget_page

UNSUPPORTED = ("real_stock", "material_consumption")


def _mass(*, as_of: datetime) -> dict:
    payload = selectors.wip_mass(as_of=as_of)  # cached: the API's entry, warmed after every ingestion
    if payload.get("status") == NOT_SUPPORTED:
        return {"unsupported": payload}
    phases = sorted(payload["by_phase"]["value"], key=lambda p: -p["mass_kg"])
    config = chart("bar", [p["name"] or _("phase unknown") for p in phases], [
        {"label": _("Theoretical mass (kg)"), "data": [p["mass_kg"] for p in phases], "backgroundColor": "#f0a020"},
    ], indexAxis="y", scales={"x": {"title": {"display": True, "text": "kg"}}})
    return {"mass": payload, "phases": phases, "config": config}


def _gelcoat(*, as_of: datetime) -> dict:
    payload = selectors.gelcoat_theoretical_usage(as_of=as_of, period="month")
    if payload.get("status") == NOT_SUPPORTED:
        return {"unsupported": payload}
    series = payload["series"]["value"]
    config = chart("bar", [s["period_start"][:7] for s in series], [
        {"label": _("Deck"), "data": [s["deck_qty"] for s in series], "backgroundColor": "#4a7fc1", "stack": "g"},
        {"label": _("Hull"), "data": [s["hull_qty"] for s in series], "backgroundColor": "#9bb8e0", "stack": "g"},
    ], scales={"x": {"stacked": True}, "y": {"stacked": True, "title": {"display": True, "text": _("theoretical quantity")}}})
    return {"gelcoat": payload, "series": series, "config": config}


def _unsupported(*, as_of: datetime) -> dict:
    return {"features": [selectors.unsupported_feature(feature=f) for f in UNSUPPORTED]}


WIDGETS = {"mass": _mass, "gelcoat": _gelcoat, "unsupported": _unsupported}


@login_required
@require_GET
def inventory_page(request):
    """SmartInventory dashboard; widgets load lazily from this view (?widget=, HTMX)."""
    return widget_page(request, widgets=WIDGETS, partial="inventory/partials/_{widget}.html",
                       template="inventory/inventory.html", url_name="inventory")
