"""Supervisor pages of the quality domain: found-vs-culprit heatmap, Pareto, severity trend, coverage notes; the error list."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET

from orders.choices import ProductFamily
from orders.selectors import phase_choices
from prodplan.gates import NOT_SUPPORTED
from prodplan.pages import chart, lazy_url, page_as_of, render_widget
from prodplan.params import InvalidParam, id_param
from quality import selectors

PARETO_TOP = 20  # the API default: the cache warmed after each ingestion serves the page too
# The darkest heatmap cell: rgba(192,57,43,0.7) on white still gives the page's ink 4.86:1 contrast (WCAG AA 4.5:1);
# a darker cell fails with the ink and with white alike (axe color-contrast), so every cell keeps the ink.
HEATMAP_MAX_ALPHA = 0.7
SEVERITY_COLOURS = {"1": "#f2c94c", "2": "#f2994a", "3": "#c0392b"}


HEATMAP_TOP = 8  # phases kept per heatmap axis (by their total); the rest are summed into "Other phases"
BY_PRODUCT_TOP = 15  # products listed (by orders); the families are all listed


def _overview(as_of: datetime, since=None, until=None) -> dict:
    return selectors.quality_overview(as_of=as_of, top=PARETO_TOP, since=since, until=until)


def _period_query(since, until) -> dict:
    """The page's period as the error list's parameters (days, until inclusive): the same window."""
    return {k: timezone.localtime(v).date().isoformat() for k, v in
            (("since", since), ("until", until - timedelta(days=1) if until else None)) if v}


def _top_ids(totals: dict, top: int) -> list:
    """The `top` keys with the largest totals (ties by id); the others go to the "other" bucket."""
    return [k for k, _n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def _heatmap(*, as_of: datetime, since=None, until=None) -> dict:
    payload = selectors.quality_heatmap(as_of=as_of, since=since, until=until)  # cached; warmed without a period
    if payload.get("status") == NOT_SUPPORTED:
        return {"unsupported": payload}
    cells = payload["matrix"]["value"]
    counts = {(c["found_phase_id"], c["culprit_phase_id"]): c["count"] for c in cells}
    names = {p["phase_id"]: p["name"] for p in payload["phases"]}
    found_totals, culprit_totals = {}, {}
    for (f, c), n in counts.items():
        found_totals[f] = found_totals.get(f, 0) + n
        culprit_totals[c] = culprit_totals.get(c, 0) + n
    found_ids, culprit_ids = _top_ids(found_totals, HEATMAP_TOP), _top_ids(culprit_totals, HEATMAP_TOP)
    other_found = [f for f in found_totals if f not in found_ids]
    other_culprit = [c for c in culprit_totals if c not in culprit_ids]
    # Axes: the top phases, then one "other" entry (None) when some phase was left out.
    found_axis = found_ids + ([None] if other_found else [])
    culprit_axis = culprit_ids + ([None] if other_culprit else [])

    def cell(f, c) -> int:
        fs = other_found if f is None else [f]
        cs = other_culprit if c is None else [c]
        return sum(counts.get((a, b), 0) for a in fs for b in cs)

    grid = {(f, c): cell(f, c) for f in found_axis for c in culprit_axis}
    top = max(grid.values(), default=0)
    period = _period_query(since, until)
    rows = []
    for f in found_axis:
        row = []
        for c in culprit_axis:
            n = grid[(f, c)]
            # A cell's errors in the error list: the same attribution, so the list counts the cell's n ("other"
            # cells sum several phases and have no single filter).
            url = None
            if n and f is not None and c is not None:
                url = f"{reverse('quality-errors')}?{urlencode({'detected_phase': f, 'culprit_phase': c, **period})}"
            row.append({"n": n, "alpha": f"{(HEATMAP_MAX_ALPHA * n / top if top else 0):.2f}", "url": url})
        rows.append({"name": _("Other phases") if f is None else (names.get(f) or f), "other": f is None,
                     "cells": row, "total": sum(x["n"] for x in row)})
    columns = [{"name": _("Other phases") if c is None else (names.get(c) or c), "other": c is None,
                "total": sum(grid[(f, c)] for f in found_axis)} for c in culprit_axis]
    return {"matrix": payload["matrix"], "rows": rows, "columns": columns,
            "total": sum(counts.values()), "top": HEATMAP_TOP,
            "other_found": len(other_found), "other_culprit": len(other_culprit)}


def _pareto(*, as_of: datetime, since=None, until=None) -> dict:
    pareto = _overview(as_of, since, until)["pareto"]
    items = pareto["value"]
    # Bars are labelled by rank (no overlap at any width); the key below lists each rank's description, truncated
    # by CSS with the full text in its title.
    config = chart("bar", [str(i + 1) for i in range(len(items))], [
        {"type": "bar", "label": _("Errors"), "data": [i["count"] for i in items], "backgroundColor": "#4a7fc1", "yAxisID": "y"},
        {"type": "line", "label": _("Cumulative share"), "data": [i["cumulative_share"] for i in items],
         "borderColor": "#c0392b", "yAxisID": "y1", "pointRadius": 2},
    ], scales={"x": {"title": {"display": True, "text": _("rank (see the list below)")},
                     "ticks": {"autoSkip": False, "maxRotation": 0}},
               "y": {"title": {"display": True, "text": _("errors")}},
               "y1": {"position": "right", "min": 0, "max": 1, "format": "percent", "grid": {"drawOnChartArea": False}}})
    return {"pareto": pareto, "items": items, "config": config}


def _trend(*, as_of: datetime, since=None, until=None) -> dict:
    trend = _overview(as_of, since, until)["trend_by_month"]
    months = trend["value"]
    labels = {"1": _("minor"), "2": _("major"), "3": _("critical")}
    config = chart("bar", [m["month"] for m in months], [
        {"label": f"{s} · {labels[s]}", "data": [m["by_severity"].get(s, 0) for m in months],
         "backgroundColor": SEVERITY_COLOURS[s], "stack": "sev"}
        for s in ("1", "2", "3")
    ], scales={"x": {"stacked": True}, "y": {"stacked": True, "title": {"display": True, "text": _("errors")}}})
    return {"trend": trend, "config": config}


def _notes(*, as_of: datetime, since=None, until=None) -> dict:
    return {"overview": _overview(as_of, since, until), "period": bool(since or until)}


def _by_product(*, as_of: datetime, since=None, until=None) -> dict:
    data = selectors.quality_by_product(as_of=as_of, since=since, until=until)
    products = data["products"]["value"]
    base, period = reverse("quality-errors"), _period_query(since, until)
    # Each row links to its errors in the list (with a period: the errors dated in it, of any order's creation).
    families = [{**f, "url": f"{base}?{urlencode({'family': f['family'], **period})}"}
                for f in data["families"]["value"]]
    products = [{**p, "url": f"{base}?{urlencode({'product': p['product_id'], **period})}"
                 if p["product_id"] is not None else None} for p in products]
    return {"data": data, "families": families,
            "products": products[:BY_PRODUCT_TOP], "products_left": max(0, len(products) - BY_PRODUCT_TOP),
            "period": bool(since or until)}


WIDGETS = {"notes": _notes, "by_product": _by_product, "heatmap": _heatmap, "pareto": _pareto, "trend": _trend}
PERIOD_PARAMS = ("date_from", "date_to")


@login_required
@require_GET
def quality_page(request):
    """The quality dashboard; each widget loads lazily from this view (?widget=, HTMX), every one over the period
    ?date_from= / ?date_to= (days, date_to inclusive; a bad date is a 400 naming the parameter)."""
    day_from = _date_param(request, "date_from")
    day_to = _date_param(request, "date_to")
    if day_from and day_to and day_to < day_from:
        raise InvalidParam("date_to", request.GET["date_to"], _BEFORE_START)
    since, until = selectors.period_bounds(day_from, day_to)
    as_of = page_as_of(request)
    widget = request.GET.get("widget")
    if request.htmx and widget in WIDGETS:
        return render_widget(request, f"quality/partials/_{widget}.html", WIDGETS[widget],
                             as_of=as_of, since=since, until=until)
    keep = {p: request.GET.get(p) or None for p in ("as_of", *PERIOD_PARAMS)}
    return render(request, "quality/quality.html", {
        "as_of": as_of, "widget_urls": {name: lazy_url("quality", name, **keep) for name in WIDGETS},
        "date_from": request.GET.get("date_from", ""), "date_to": request.GET.get("date_to", ""),
        "errors_query": urlencode({k: v for k, v in (("as_of", keep["as_of"]), ("since", keep["date_from"]),
                                                      ("until", keep["date_to"])) if v}),
    })


ERRORS_PAGE_SIZE = 50
_NOT_A_DATE = gettext_noop("'%(value)s' is not a date (YYYY-MM-DD).")
_BEFORE_START = gettext_noop("'%(value)s' is before the period's start (date_from).")
_NOT_A_FAMILY = gettext_noop("'%(value)s' is not a product family.")
FAMILIES = {*ProductFamily.values, "UNKNOWN"}  # UNKNOWN: orders whose product is not in the catalogue


def _date_param(request, param: str):
    """?param=YYYY-MM-DD as a date; None when absent; anything else a 400 naming it."""
    raw = request.GET.get(param, "")
    if raw == "":
        return None
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is None:
        raise InvalidParam(param, raw, _NOT_A_DATE)
    return day


@login_required
@require_GET
def quality_errors_page(request):
    """The quality errors at the page's as-of, filtered by the phase where found (?detected_phase=), the culprit's
    phase (?culprit_phase=, as the heatmap attributes it), the order's ?product= or ?family= and a period (?since= / ?until=, days, until inclusive);
    newest first, ?page= pages of ERRORS_PAGE_SIZE; each error's order links to the order page."""
    as_of = page_as_of(request)
    found = id_param(request, "detected_phase")
    culprit = id_param(request, "culprit_phase")
    since, until = selectors.period_bounds(_date_param(request, "since"), _date_param(request, "until"))
    product = id_param(request, "product")
    family = request.GET.get("family") or None
    if family is not None and family not in FAMILIES:
        raise InvalidParam("family", family, _NOT_A_FAMILY)
    page = id_param(request, "page") or 1
    result = selectors.quality_errors(
        as_of=as_of, found_phase_id=found, culprit_phase_id=culprit, since=since, until=until, product_id=product,
        family=family,
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
        "product": product, "family": family,
    })
