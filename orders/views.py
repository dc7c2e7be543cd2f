"""Supervisor pages of the orders domain: overview, order list, order detail, export (page kit: prodplan.pages)."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import BytesIO
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from orders import selectors
from orders.choices import OrderState, OrderStatus, ProductFamily
from orders.filtersets import ManufacturingOrderFilterSet
from orders.templatetags.order_labels import basis_label, family_label, scope_label, state_label, status_label
from prodplan.pages import chart, extra_widget, page_as_of, panels, widget_page
from prodplan.params import InvalidParam, id_param
from prodplan.xlsx import safe_row

ORDER_PAGE_SIZE = 50
RISK_TOP = 10
BOTTLENECK_TOP = 5
EXPORT_COLUMNS = ("id", "product_id", "product_name", "product_family", "status", "state", "phase_id", "phase_name",
                  "placement_basis", "in_state_days", "created_at", "finished_at", "age_days", "lead_time_days",
                  "threshold_scope")
EXPORT_CHUNK = 2000
# The export's header row, in the request's language (the columns stay in EXPORT_COLUMNS' order).
EXPORT_HEADERS = {
    "id": gettext_lazy("Order"), "product_id": gettext_lazy("Product id"), "product_name": gettext_lazy("Product"),
    "product_family": gettext_lazy("Family"), "status": gettext_lazy("Status against lead time"),
    "state": gettext_lazy("State"), "phase_id": gettext_lazy("Phase id"), "phase_name": gettext_lazy("Phase"),
    "placement_basis": gettext_lazy("Placed by"), "in_state_days": gettext_lazy("Days in this state"),
    "created_at": gettext_lazy("Created"), "finished_at": gettext_lazy("Finished"), "age_days": gettext_lazy("Age (days)"),
    "lead_time_days": gettext_lazy("Lead time (days)"), "threshold_scope": gettext_lazy("Thresholds from"),
}


# --- overview ----------------------------------------------------------------------------------------------


def _kpis(*, as_of: datetime) -> dict:
    kpi = selectors.kpi_overview(as_of=as_of)
    lead = kpi["lead_time_days"]
    return {"kpi": kpi, "lead": lead, "as_of": as_of}


def _wip_chart(*, as_of: datetime) -> dict:
    schedule = selectors.schedule_current(as_of=as_of)
    phases = sorted(schedule["phases"], key=lambda p: -p["wip"])
    labels = [(p["phase"] or {}).get("name") or (f"#{p['phase']['id']}" if p["phase"] else _("phase unknown")) for p in phases]
    config = chart("bar", labels, [
        {"label": _("Not started"), "data": [p["not_started"] for p in phases], "backgroundColor": "#9aa5b1", "stack": "wip"},
        {"label": _("Waiting"), "data": [p["waiting"] for p in phases], "backgroundColor": "#f0a020", "stack": "wip"},
        {"label": _("In progress"), "data": [p["in_progress"] for p in phases], "backgroundColor": "#4a7fc1", "stack": "wip"},
    ], indexAxis="y", scales={"x": {"stacked": True, "title": {"display": True, "text": _("orders")}}, "y": {"stacked": True}})
    # Each bar's orders in the order list (the table under the chart; config "links" for a click on a bar).
    states = (OrderState.NOT_STARTED, OrderState.WAITING, OrderState.IN_PROGRESS)
    rows = [{"label": label, "cells": [{"n": p[state], "url": _orders_url(p, state)} for state in states]}
            for label, p in zip(labels, phases, strict=True)]
    for dataset, state in zip(config["data"]["datasets"], states, strict=True):
        dataset["links"] = [_orders_url(p, state) for p in phases]
    return {"schedule": schedule, "config": config, "as_of": as_of, "rows": rows}


def _orders_url(phase_row: dict, *states: str) -> str | None:
    """The order list filtered to the orders of a phase in these states (None for orders with no phase)."""
    if not phase_row["phase"]:
        return None
    query = urlencode([("current_phase", phase_row["phase"]["id"]), *(("state", s) for s in states)])
    return f"{reverse('order-list')}?{query}"


def _bottlenecks(*, as_of: datetime) -> dict:
    names = selectors.phase_names()
    # "Waiting now" counts the orders waiting for the phase or not started at it: the link lists those.
    rows = [dict(r, name=names.get(r["phase_id"]), orders_url=_orders_url(
                {"phase": {"id": r["phase_id"]}}, OrderState.WAITING, OrderState.NOT_STARTED))
            for r in selectors.bottleneck_table(as_of=as_of) if r["forecast_hours"]]
    return {"rows": rows[:BOTTLENECK_TOP], "as_of": as_of, "backtest": selectors.bottleneck_backtest_score(),
            "min_volume": selectors.BOTTLENECK_MIN_QUEUE_EVENTS, "route_steps": selectors.BOTTLENECK_ROUTE_STEPS,
            "recent_weight": selectors.BOTTLENECK_RECENT_WEIGHT}


def _risk(*, as_of: datetime) -> dict:
    # The note states the score's weights and the lateness percentile as configured, not as once written.
    return {"risk": selectors.risk_queue(as_of=as_of, limit=RISK_TOP), "as_of": as_of,
            "late_percentile": round(100 * settings.ORDER_LATE_PERCENTILE)}


OVERVIEW_WIDGETS = {"kpis": _kpis, "wip": _wip_chart, "bottlenecks": _bottlenecks, "risk": _risk}


@login_required
@require_GET
def overview(request):
    """The factory at a glance; each widget loads lazily from this same view (?widget=, HTMX)."""
    return widget_page(
        request, widgets=OVERVIEW_WIDGETS, partial="orders/partials/_overview_{widget}.html",
        template="orders/overview.html", url_name="overview",
        page_context=lambda: panels("overview"),  # ingestion's freshness chip
    )


# --- order list -----------------------------------------------------------------------------------------------


# A bad ?sort= or filter value is a 400 naming the parameter (prodplan.params.InvalidParam), not an empty list.
_BAD_SORT = gettext_noop("'%(value)s' is not a sort of this list: age, lead_time, state or phase (with - first for "
                         "descending).")
_BAD_FILTER = gettext_noop("'%(value)s' is not a value this filter accepts.")
# Query keys that are not filters: the page's cursor, offset, sort and HTMX widget keys.
_NOT_FILTERS = ("after", "offset", "sort", "widget")


def _filterset(request, as_of: datetime) -> ManufacturingOrderFilterSet:
    """The list's filters from the query string; an invalid value is a 400 naming its parameter."""
    data = request.GET.copy()
    for key in _NOT_FILTERS:
        data.pop(key, None)
    filterset = ManufacturingOrderFilterSet(data, queryset=selectors.order_queryset(as_of=as_of), as_of=as_of)
    if not filterset.is_valid():
        field = next(iter(filterset.errors))
        raise InvalidParam(field, ",".join(request.GET.getlist(field)), _BAD_FILTER)
    return filterset


def _sort_param(request) -> str | None:
    """?sort=<key> or -<key> (a key of selectors.ORDER_SORTS); None when absent; anything else a 400 naming it."""
    raw = request.GET.get("sort", "")
    if raw == "":
        return None
    if raw.removeprefix("-") not in selectors.ORDER_SORTS:
        raise InvalidParam("sort", raw, _BAD_SORT)
    return raw


def _filter_query(request, *, keep_sort: bool = True) -> str:
    """The current filter (and sort) as a query string (no cursor, no HTMX widget keys)."""
    data = request.GET.copy()
    for key in _NOT_FILTERS:
        if key != "sort" or not keep_sort:
            data.pop(key, None)
    if keep_sort and not data.get("sort"):
        data.pop("sort", None)
    return data.urlencode()


def _sort_links(request, sort: str | None) -> dict:
    """Per sortable column: the URL sorting by it (descending first for age and lead time, toggled when it is the
    current sort) and its aria-sort."""
    base = _filter_query(request, keep_sort=False)
    links = {}
    for key in selectors.ORDER_SORTS:
        current = sort is not None and sort.removeprefix("-") == key
        descending = sort.startswith("-") if current else False
        first = f"-{key}" if key in ("age", "lead_time") else key
        target = (key if descending else f"-{key}") if current else first
        links[key] = {"url": f"{reverse('order-list')}?{base + '&' if base else ''}sort={target}",
                      "aria": ("descending" if descending else "ascending") if current else "none"}
    return links


def _order_page(request, as_of: datetime, *, count: bool) -> dict:
    """One page of the list: newest first by keyset (id < after), or by ?sort= with an offset; page_size + 1 rows
    tell whether there is more; count: also the number of orders the filter matches."""
    filterset = _filterset(request, as_of)
    sort = _sort_param(request)
    queryset = filterset.qs
    query = _filter_query(request)
    prefix = f"{reverse('order-list')}?{query + '&' if query else ''}"
    total = None
    if sort:
        offset = id_param(request, "offset") or 0  # anything but ASCII digits: a 400 naming it
        ids = selectors.sorted_order_ids(as_of=as_of, queryset=queryset, sort=sort)
        total = len(ids)
        orders = selectors.order_rows_by_id(as_of=as_of, queryset=selectors.order_queryset(as_of=as_of),
                                            ids=ids[offset: offset + ORDER_PAGE_SIZE])
        next_url = f"{prefix}offset={offset + ORDER_PAGE_SIZE}" if offset + ORDER_PAGE_SIZE < total else None
    else:
        after = id_param(request, "after")  # anything but ASCII digits: a 400 naming it
        page = queryset.filter(id__lt=after) if after is not None else queryset
        rows = list(page.values(*selectors.ORDER_FIELDS)[: ORDER_PAGE_SIZE + 1])
        orders = selectors.order_rows(as_of=as_of, rows=rows[:ORDER_PAGE_SIZE])
        next_url = f"{prefix}after={orders[-1]['id']}" if len(rows) > ORDER_PAGE_SIZE else None
        if count:
            total = queryset.count()
    return {"orders": orders, "next_url": next_url, "filterset": filterset, "filter_query": _filter_query(request, keep_sort=False),
            "sort": sort or "", "sort_links": _sort_links(request, sort), "total": total}


@login_required
@require_GET
@vary_on_headers("HX-Request")  # the same URL answers a page or its table: a browser's Back must not reuse the table
def order_list(request):
    """Filterable, sortable order table with its count and the late / at risk / stalled tiles; HTMX swaps the
    table on filter or sort (pushing the URL, so Back restores it) and appends rows on 'load more'."""
    as_of = page_as_of(request)
    more = bool(request.GET.get("after") or request.GET.get("offset"))
    # A history restore (Back to a URL htmx pushed, not in its cache) asks for the whole page.
    restore = request.headers.get("HX-History-Restore-Request") == "true"
    partial = request.htmx and not restore
    context = {"as_of": as_of, **_order_page(request, as_of, count=not (partial and more))}
    if partial and more:
        return render(request, "orders/partials/_order_rows.html", context)
    if partial:
        return render(request, "orders/partials/_order_table.html", context)
    context.update({
        "tiles": selectors.order_tiles(as_of=as_of),
        "statuses": OrderStatus.choices,
        "states": OrderState.choices,
        "selected_states": request.GET.getlist("state"),
        "families": ProductFamily.choices,
        "phases": selectors.phase_choices(),
        "selected_statuses": request.GET.getlist("status"),
        "q": request.GET.get("q", ""),
        "selected_family": request.GET.get("family", ""),
        "selected_phase": request.GET.get("current_phase", ""),
    })
    return render(request, "orders/order_list.html", context)


@login_required
@require_GET
def order_export(request):
    """The current filter as an .xlsx (openpyxl write-only; one query streamed with a server-side cursor)."""
    from openpyxl import Workbook  # loaded by the export only (a large module)

    as_of = page_as_of(request)
    queryset = _filterset(request, as_of).qs
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(str(_("orders")))
    sheet.append([str(EXPORT_HEADERS[column]) for column in EXPORT_COLUMNS] + [str(_("Data as of"))])
    stamp = timezone.localtime(as_of).replace(tzinfo=None)
    count = 0
    chunk: list[dict] = []

    def flush() -> None:
        for order in selectors.order_rows(as_of=as_of, rows=chunk):
            position = order["position"] or {}
            values = {
                "id": order["id"], "product_id": (order["product"] or {}).get("id"),
                "product_name": (order["product"] or {}).get("name"),
                "product_family": family_label((order["product"] or {}).get("family")),
                "status": status_label(order["status"]), "state": state_label(order["state"]),
                "phase_id": (position.get("phase") or {}).get("id"), "phase_name": (position.get("phase") or {}).get("name"),
                "placement_basis": basis_label(position.get("placement_basis")) if position.get("placement_basis") else None,
                "in_state_days": position.get("in_state_days") if order["state"] != OrderState.FINISHED else None,
                "created_at": order["created"], "finished_at": order["finished"], "age_days": order["age_days"],
                "lead_time_days": order["lead_time_days"], "threshold_scope": scope_label(order["status_basis"]["threshold_scope"])
                if order["status_basis"]["threshold_scope"] else None,
            }
            row = []
            for column in EXPORT_COLUMNS:
                value = values[column]
                if isinstance(value, datetime):
                    value = timezone.localtime(value).replace(tzinfo=None)
                if isinstance(value, float):
                    value = round(value, 3)
                row.append(value)
            sheet.append(safe_row(sheet, [*row, stamp]))
        chunk.clear()

    for row in queryset.values(*selectors.ORDER_FIELDS).iterator(chunk_size=EXPORT_CHUNK):
        chunk.append(row)
        count += 1
        if len(chunk) >= EXPORT_CHUNK:
            flush()
    flush()
    buffer = BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(),
                            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="orders_{as_of:%Y%m%d}.xlsx"'
    response["X-Exported-Rows"] = str(count)
    return response


# --- order detail ----------------------------------------------------------------------------------------------

GANTT_WIDTH = 960
GANTT_LABEL = 190
GANTT_ROW = 24
GANTT_TOP = 28


def _x(t: datetime, start: datetime, span: float) -> float:
    return GANTT_LABEL + (t - start).total_seconds() / span * (GANTT_WIDTH - GANTT_LABEL - 10)


def remaining_plan(timeline: dict, forecast: dict | None, *, as_of: datetime) -> dict | None:
    """An open order's remaining work as forecast segments from as_of to the ETA's predicted finish: the phase in
    progress (what is left of its median duration, at least a tenth of it) then the remaining standard-route steps;
    the predicted remaining time is split across them in proportion to their median durations known at as_of (a
    step with no history gets the median of the others; all equal when none has one). None without a forecast."""
    if not forecast or forecast.get("kind") != "open":
        return None
    route = timeline["route_comparison"]
    observed = {p["phase"]["id"] for p in timeline["phases"] if p["phase"] and (p["start"] or p["end"])}
    missing = {s["phase_id"] for s in route["missing_steps"]}
    steps, seen = [], set()
    for s in route["standard_steps"]:
        if s["phase_id"] in observed or s["phase_id"] in missing or s["phase_id"] in seen:
            continue
        seen.add(s["phase_id"])
        steps.append(s)
    running = [p for p in timeline["phases"] if p["state"] == "in_progress" and p["phase"] and p["start"] <= as_of]
    current = max(running, key=lambda p: p["start"]) if running else None
    finish = forecast["predicted_finish"]
    ids = [s["phase_id"] for s in steps] + ([current["phase"]["id"]] if current else [])
    medians = selectors.phase_medians_known_at(product_id=timeline["product_id"], phase_ids=ids,
                                               as_of=as_of) if ids and timeline["product_id"] is not None else {}
    known = sorted(medians.values())
    fill = known[len(known) // 2] if known else 1.0
    weights = [medians.get(s["phase_id"], fill) for s in steps]
    if current is not None:  # the phase in progress first: what is left of its median
        median = medians.get(current["phase"]["id"], fill)
        elapsed = (as_of - current["start"]).total_seconds()
        steps = [{"phase_id": current["phase"]["id"], "name": current["phase"]["name"], "in_progress": True}, *steps]
        weights = [max(median - elapsed, median / 10.0), *weights]
    total = sum(weights) or 1.0
    remaining = (finish - as_of).total_seconds()
    segments, t = [], as_of
    for s, w in zip(steps, weights, strict=True):
        end = t + timedelta(seconds=remaining * w / total)
        segments.append({"phase_id": s["phase_id"], "name": s["name"] or str(s["phase_id"]), "start": t, "end": end,
                         "imputed": s["phase_id"] not in medians, "in_progress": s.get("in_progress", False)})
        t = end
    if segments:
        segments[-1]["end"] = finish  # no rounding drift: the last bar ends at the predicted finish
    return {"segments": segments, "predicted_finish": finish, "earliest": forecast.get("earliest"),
            "latest": forecast.get("latest"), "remaining_days": forecast["remaining_days"],
            "imputed_steps": sum(1 for x in segments if x["imputed"]), "basis": "theoretical",
            "coverage": round(sum(1 for x in segments if not x["imputed"]) / len(segments), 4) if segments else None}


def build_gantt(timeline: dict, *, as_of: datetime, plan: dict | None = None) -> dict | None:
    """SVG geometry of the order's timeline: one lane per standard route step (missing ones flagged), then
    lanes for phases outside the route; bars are real executions (open ones run to as_of), then an open order's
    forecast bars (remaining_plan) with its predicted finish and 80% interval. The axis ends at as_of (the data's
    date, never the wall clock), or at the interval's upper end (else the predicted finish) of an open order."""
    phases = timeline["phases"]
    times = [p["start"] for p in phases if p["start"]] + [p["end"] for p in phases if p["end"]]
    if not times:
        return None
    start = min(times)
    ahead = [x for x in ((plan or {}).get("latest"), (plan or {}).get("predicted_finish")) if x]
    end = max(times + [as_of] + ahead)
    span = max((end - start).total_seconds(), 3600.0)
    lanes: list[dict] = []
    index: dict = {}
    route = timeline["route_comparison"]
    missing = {s["phase_id"] for s in route["missing_steps"]}
    for step in route["standard_steps"]:
        if step["phase_id"] in index:
            continue
        index[step["phase_id"]] = len(lanes)
        lanes.append({"label": f"{step['sequence']}. {step['name'] or step['phase_id']}",
                      "kind": "missing" if step["phase_id"] in missing else "standard"})
    for p in phases:
        pid = p["phase"]["id"] if p["phase"] else None
        if pid not in index:
            index[pid] = len(lanes)
            name = (p["phase"] or {}).get("name") or (pid if pid is not None else "?")
            lanes.append({"label": str(name), "kind": "extra" if route["has_standard_route"] else "standard"})
    bars = []
    for p in phases:
        if not p["start"]:
            continue
        lane = index[p["phase"]["id"] if p["phase"] else None]
        finish = p["end"] or as_of
        x1, x2 = _x(p["start"], start, span), _x(finish, start, span)
        css = "rework" if p["is_rework"] else p["state"]
        title = f"{(p['phase'] or {}).get('name') or '?'}: {timezone.localtime(p['start']):%Y-%m-%d %H:%M}"
        title += f" → {timezone.localtime(p['end']):%Y-%m-%d %H:%M}" if p["end"] else f" → ({_('in progress')})"
        bars.append({"x": round(x1, 1), "w": round(max(x2 - x1, 0.0), 1), "y": GANTT_TOP + lane * GANTT_ROW + 4,
                     "css": css, "marker": x2 - x1 < 2, "cx": round(x1, 1), "cy": GANTT_TOP + lane * GANTT_ROW + 12,
                     "title": title})
    forecast_bars, marks = [], {}
    if plan:
        for seg in plan["segments"]:
            lane = index.get(seg["phase_id"])
            if lane is None:
                continue
            x1, x2 = _x(seg["start"], start, span), _x(seg["end"], start, span)
            forecast_bars.append({
                "x": round(x1, 1), "w": round(max(x2 - x1, 0.0), 1), "y": GANTT_TOP + lane * GANTT_ROW + 4,
                "phase_id": seg["phase_id"], "end": seg["end"],
                "title": f"{seg['name']}: {_('forecast')} {timezone.localtime(seg['start']):%Y-%m-%d %H:%M} → "
                         f"{timezone.localtime(seg['end']):%Y-%m-%d %H:%M}"})
        marks["finish_x"] = round(_x(plan["predicted_finish"], start, span), 1)
        if plan.get("earliest") and plan.get("latest"):
            lo, hi = _x(plan["earliest"], start, span), _x(plan["latest"], start, span)
            marks["interval_x"], marks["interval_w"] = round(lo, 1), round(max(hi - lo, 0.0), 1)
    ticks = []
    for k in range(6):
        t = start + timedelta(seconds=span * k / 5)
        ticks.append({"x": round(_x(t, start, span), 1), "label": timezone.localtime(t).strftime("%d/%m %Hh"),
                      "anchor": "end" if k == 5 else "middle"})
    height = GANTT_TOP + len(lanes) * GANTT_ROW + 8
    as_of_x = round(_x(as_of, start, span), 1) if start <= as_of <= end else None
    return {"width": GANTT_WIDTH, "height": height, "label_width": GANTT_LABEL, "row": GANTT_ROW, "top": GANTT_TOP,
            "lanes": [dict(lane, y=GANTT_TOP + i * GANTT_ROW + 16, line_y=GANTT_TOP + (i + 1) * GANTT_ROW)
                      for i, lane in enumerate(lanes)],
            "bars": bars, "ticks": ticks, "as_of_x": as_of_x, "forecast_bars": forecast_bars, **marks}


@login_required
@require_GET
def order_detail(request, order_id: int):
    """One order: status, Gantt of real phases against the standard route, errors, team sizes, prediction."""
    as_of = page_as_of(request)
    widget = extra_widget(request, "order-detail", order_id=order_id, as_of=as_of)  # mlops' prediction
    if widget is not None:
        return widget
    order = selectors.order_detail(order_id=order_id, as_of=as_of)
    if order is None:
        raise Http404(_("No such order."))
    timeline = selectors.order_phases(order_id=order_id, as_of=as_of)
    # mlops' predicted finish (open) or lead time predicted at creation (finished); none when stalled or abandoned
    forecast = panels("order-detail-timeline", order_id=order_id, as_of=as_of, state=order["state"]).get("forecast")
    plan = remaining_plan(timeline, forecast, as_of=as_of)
    extra = panels("order-detail", order_id=order_id)  # quality's errors of the order
    names = {p["id"]: (p["phase"] or {}).get("name") for p in timeline["phases"]}
    if extra.get("errors"):
        extra["errors"] = [dict(e, culprit_phase_name=names.get(e.get("culprit_order_phase_id")))
                           for e in extra["errors"]]
    last_event = order["position"].get("last_event_at") if order.get("position") else None
    return render(request, "orders/order_detail.html", {
        "as_of": as_of,
        "order": order,
        "timeline": timeline,
        "gantt": build_gantt(timeline, as_of=as_of, plan=plan),
        "plan": plan,
        "forecast": forecast,
        "stalled_days": int((as_of - last_event).total_seconds() // 86400)
        if order["state"] == OrderState.STALLED and last_event else None,
        **extra,
        "prediction_url": f"{reverse('order-detail', args=[order_id])}?widget=prediction",
    })
