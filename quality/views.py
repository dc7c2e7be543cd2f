"""Supervisor page of the quality domain: found-vs-culprit heatmap, Pareto, severity trend, coverage notes."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from prodplan.gates import NOT_SUPPORTED
from prodplan.pages import chart, widget_page
from quality import selectors

PARETO_TOP = 20  # the API default: the cache warmed after each ingestion serves the page too
SEVERITY_COLOURS = {"1": "#f2c94c", "2": "#f2994a", "3": "#c0392b"}


def _overview(as_of: datetime) -> dict:
    return selectors.quality_overview(as_of=as_of, top=PARETO_TOP)


def _heatmap(*, as_of: datetime) -> dict:
    payload = selectors.quality_heatmap(as_of=as_of)  # cached: the API's entry, warmed after every ingestion
    if payload.get("status") == NOT_SUPPORTED:
        return {"unsupported": payload}
    cells = payload["matrix"]["value"]
    counts = {(c["found_phase_id"], c["culprit_phase_id"]): c["count"] for c in cells}
    names = {p["phase_id"]: p["name"] for p in payload["phases"]}
    order = [p["phase_id"] for p in payload["phases"]]
    found_ids = [pid for pid in order if any(k[0] == pid for k in counts)]
    culprit_ids = [pid for pid in order if any(k[1] == pid for k in counts)]
    top = max(counts.values(), default=0)
    rows = []
    for f in found_ids:
        row = []
        for c in culprit_ids:
            n = counts.get((f, c), 0)
            row.append({"n": n, "alpha": f"{(n / top if top else 0):.2f}", "dark": bool(top and n / top > 0.55)})
        rows.append({"name": names.get(f) or f, "cells": row, "total": sum(x["n"] for x in row)})
    return {"matrix": payload["matrix"], "rows": rows,
            "columns": [names.get(c) or c for c in culprit_ids]}


def _pareto(*, as_of: datetime) -> dict:
    pareto = _overview(as_of)["pareto"]
    items = pareto["value"]
    config = chart("bar", [i["description"][:40] for i in items], [
        {"type": "bar", "label": _("Errors"), "data": [i["count"] for i in items], "backgroundColor": "#4a7fc1", "yAxisID": "y"},
        {"type": "line", "label": _("Cumulative share"), "data": [i["cumulative_share"] for i in items],
         "borderColor": "#c0392b", "yAxisID": "y1", "pointRadius": 2},
    ], scales={"y": {"title": {"display": True, "text": _("errors")}},
               "y1": {"position": "right", "min": 0, "max": 1, "format": "percent", "grid": {"drawOnChartArea": False}}})
    return {"pareto": pareto, "items": items, "config": config}


def _trend(*, as_of: datetime) -> dict:
    trend = _overview(as_of)["trend_by_month"]
    months = trend["value"]
    labels = {"1": _("minor"), "2": _("major"), "3": _("critical")}
    config = chart("bar", [m["month"] for m in months], [
        {"label": f"{s} · {labels[s]}", "data": [m["by_severity"].get(s, 0) for m in months],
         "backgroundColor": SEVERITY_COLOURS[s], "stack": "sev"}
        for s in ("1", "2", "3")
    ], scales={"x": {"stacked": True}, "y": {"stacked": True, "title": {"display": True, "text": _("errors")}}})
    return {"trend": trend, "config": config}


def _notes(*, as_of: datetime) -> dict:
    return {"overview": _overview(as_of)}


WIDGETS = {"heatmap": _heatmap, "pareto": _pareto, "trend": _trend, "notes": _notes}


@login_required
@require_GET
def quality_page(request):
    """The quality dashboard; each widget loads lazily from this view (?widget=, HTMX)."""
    return widget_page(request, widgets=WIDGETS, partial="quality/partials/_{widget}.html",
                       template="quality/quality.html", url_name="quality")
