"""Supervisor pages of the quality domain: found-vs-culprit heatmap, Pareto, severity trend, coverage notes; the error list."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET

from orders.selectors import phase_choices
from prodplan.gates import NOT_SUPPORTED
from prodplan.pages import chart, page_as_of, widget_page
from prodplan.params import InvalidParam, id_param
from quality import selectors

PARETO_TOP = 20  # the API default: the cache warmed after each ingestion serves the page too
# The darkest heatmap cell: rgba(192,57,43,0.7) on white still gives the page's ink 4.86:1 contrast (WCAG AA 4.5:1);
# a darker cell fails with the ink and with white alike (axe color-contrast), so every cell keeps the ink.
HEATMAP_MAX_ALPHA = 0.7
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
            # A cell's errors in the error list: the same attribution, so the list counts the cell's n.
            url = f"{reverse('quality-errors')}?{urlencode({'detected_phase': f, 'culprit_phase': c})}" if n else None
            row.append({"n": n, "alpha": f"{(HEATMAP_MAX_ALPHA * n / top if top else 0):.2f}",
                        "url": url})
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


ERRORS_PAGE_SIZE = 50
_NOT_A_DATE = gettext_noop("'%(value)s' is not a date (YYYY-MM-DD).")


def _date_param(request, param: str):
    """?param=YYYY-MM-DD as the start of that day (local time); None when absent; anything else a 400 naming it."""
    raw = request.GET.get(param, "")
    if raw == "":
        return None
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is None:
        raise InvalidParam(param, raw, _NOT_A_DATE)
    return timezone.make_aware(datetime.combine(day, time.min))


@login_required
@require_GET
def quality_errors_page(request):
    """The quality errors at the page's as-of, filtered by the phase where found (?detected_phase=), the culprit's
    phase (?culprit_phase=, as the heatmap attributes it) and a period (?since= / ?until=, days, until inclusive);
    newest first, ?page= pages of ERRORS_PAGE_SIZE; each error's order links to the order page."""
    as_of = page_as_of(request)
    found = id_param(request, "detected_phase")
    culprit = id_param(request, "culprit_phase")
    since = _date_param(request, "since")
    until_day = _date_param(request, "until")
    page = id_param(request, "page") or 1
    result = selectors.quality_errors(
        as_of=as_of, found_phase_id=found, culprit_phase_id=culprit, since=since,
        until=until_day + timedelta(days=1) if until_day else None,
        offset=(page - 1) * ERRORS_PAGE_SIZE, limit=ERRORS_PAGE_SIZE)
    query = request.GET.copy()
    query.pop("page", None)
    base = f"{reverse('quality-errors')}?{query.urlencode() + '&' if query else ''}page="
    pages = max(1, -(-result["count"] // ERRORS_PAGE_SIZE))
    names = dict(phase_choices())
    return render(request, "quality/errors.html", {
        "as_of": as_of, "errors": result, "page": page, "pages": pages,
        "previous_url": f"{base}{page - 1}" if page > 1 else None,
        "next_url": f"{base}{page + 1}" if page < pages else None,
        "phases": list(names.items()), "detected_phase": found, "culprit_phase": culprit,
        "detected_name": names.get(found), "culprit_name": names.get(culprit),
        "since": request.GET.get("since", ""), "until": request.GET.get("until", ""),
    })
