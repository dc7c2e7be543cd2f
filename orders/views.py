"""Supervisor pages of the orders domain (overview, order list, order detail, export) and the shared page helpers."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from io import BytesIO
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from orders import selectors
from orders.choices import OrderState, OrderStatus, ProductFamily
from orders.filtersets import ManufacturingOrderFilterSet
from orders.models import Phase
from prodplan.cache import cached
from prodplan.params import id_param
from prodplan.roles import DATA_STEWARDS, SUPERVISORS

logger = logging.getLogger(__name__)

ORDER_PAGE_SIZE = 50
RISK_TOP = 10
BOTTLENECK_TOP = 5
EXPORT_COLUMNS = ("id", "product_id", "product_name", "product_family", "status", "state", "phase_id", "phase_name",
                  "placement_basis", "in_state_days", "created_at", "finished_at", "age_days", "lead_time_days",
                  "threshold_scope")
EXPORT_CHUNK = 2000


# --- shared page helpers (used by every page app's views) ---------------------------------------------


def page_as_of(request) -> datetime:
    """'Now' of a page: ?as_of= when given, else the data's as-of (last successful ingestion), else the clock.

    An invalid ?as_of= raises InvalidAsOf (a BadRequest): the answer is a 400 page naming the parameter and
    the accepted range (prodplan.api_errors.bad_request), never a silent fallback. Called before any widget
    is computed, so render_widget's error box does not swallow it."""
    from prodplan.asof import as_of_from, data_as_of

    return as_of_from(request.GET.get("as_of")) or data_as_of() or timezone.now()


def in_group(user, name: str) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.groups.filter(name=name).exists()))


def can_run_whatif(user) -> bool:
    return bool(user.is_authenticated and (user.is_staff or in_group(user, SUPERVISORS)))


def can_ingest(user) -> bool:
    return bool(user.is_authenticated and (user.is_staff or in_group(user, DATA_STEWARDS)))


def render_widget(request, template: str, compute, **kwargs) -> HttpResponse:
    """Render one lazily loaded widget; a failure becomes an honest error box, not a broken page."""
    try:
        context = compute(**kwargs)
    except Exception as exc:
        logger.exception("widget failed", extra={"template": template})
        return render(request, "partials/_error.html", {"error": type(exc).__name__})
    return render(request, template, context)


def widget_page(request, *, widgets: dict, partial: str, template: str, url_name: str, page_context=None):
    """A dashboard whose widgets load lazily from the same view: ?widget=<name> over HTMX renders
    partial.format(widget=name); otherwise the page, with a lazy URL per widget (keeping an explicit ?as_of=).
    page_context: a callable giving extra context, called for the full page only."""
    as_of = page_as_of(request)
    widget = request.GET.get("widget")
    if request.htmx and widget in widgets:
        return render_widget(request, partial.format(widget=widget), widgets[widget], as_of=as_of)
    explicit = request.GET.get("as_of")
    return render(request, template, {
        "as_of": as_of,
        "widget_urls": {name: lazy_url(url_name, name, as_of=explicit) for name in widgets},
        **(page_context() if page_context else {}),
    })


def lazy_url(name: str, widget: str, **params) -> str:
    query = urlencode({"widget": widget, **{k: v for k, v in params.items() if v is not None}})
    return f"{reverse(name)}?{query}"


def chart(chart_type: str, labels: list, datasets: list[dict], **options) -> dict:
    """A Chart.js config (rendered with json_script; static/js/app.js draws it)."""
    return {"type": chart_type, "data": {"labels": labels, "datasets": datasets}, "options": options}


def _freshness() -> dict:
    """Last run, the data's as-of and open rejects, for the chip linking to the ingestion page (3 queries)."""
    from ingestion.choices import TriageStatus
    from ingestion.models import IngestionRun, Reject
    from ingestion.selectors import last_successful_run

    last = IngestionRun.objects.order_by("-id").values("id", "status", "finished_at", "created_at").first()
    good = last_successful_run()
    return {
        "last_run": last,
        "as_of": good.as_of if good else None,
        "last_success_at": good.finished_at if good else None,
        "rejects_open": Reject.objects.filter(status=TriageStatus.OPEN).count(),
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
    return {"schedule": schedule, "config": config, "as_of": as_of}


def _bottlenecks(*, as_of: datetime) -> dict:
    names = selectors.phase_names()
    rows = [dict(r, name=names.get(r["phase_id"])) for r in selectors.bottleneck_table(as_of=as_of) if r["queue_score_hours"]]
    return {"rows": rows[:BOTTLENECK_TOP], "as_of": as_of, "backtest": selectors.bottleneck_backtest_score(),
            "min_volume": selectors.BOTTLENECK_MIN_QUEUE_EVENTS}


def _risk(*, as_of: datetime) -> dict:
    return {"risk": selectors.risk_queue(as_of=as_of, limit=RISK_TOP), "as_of": as_of}


OVERVIEW_WIDGETS = {"kpis": _kpis, "wip": _wip_chart, "bottlenecks": _bottlenecks, "risk": _risk}


@login_required
@require_GET
def overview(request):
    """The factory at a glance; each widget loads lazily from this same view (?widget=, HTMX)."""
    return widget_page(
        request, widgets=OVERVIEW_WIDGETS, partial="orders/partials/_overview_{widget}.html",
        template="orders/overview.html", url_name="overview",
        page_context=lambda: {"freshness": _freshness()},
    )


# --- order list -----------------------------------------------------------------------------------------------


def _filterset(request, as_of: datetime) -> ManufacturingOrderFilterSet:
    data = request.GET.copy()
    data.pop("after", None)
    return ManufacturingOrderFilterSet(data, queryset=selectors.order_queryset(as_of=as_of), as_of=as_of)


def _filter_query(request) -> str:
    """The current filter as a query string (no cursor, no HTMX widget keys)."""
    data = request.GET.copy()
    for key in ("after", "widget"):
        data.pop(key, None)
    return data.urlencode()


def _order_page(request, as_of: datetime) -> dict:
    """One keyset page (id < after, newest first): page_size + 1 rows tell whether there is more; their states (2 queries)."""
    filterset = _filterset(request, as_of)
    queryset = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    after = id_param(request, "after")  # anything but ASCII digits: a 400 naming it
    if after is not None:
        queryset = queryset.filter(id__lt=after)
    rows = list(queryset.values(*selectors.ORDER_FIELDS)[: ORDER_PAGE_SIZE + 1])
    more = len(rows) > ORDER_PAGE_SIZE
    orders = selectors.order_rows(as_of=as_of, rows=rows[:ORDER_PAGE_SIZE])
    query = _filter_query(request)
    next_url = None
    if more:
        next_url = f"{reverse('order-list')}?{query + '&' if query else ''}after={orders[-1]['id']}"
    return {"orders": orders, "next_url": next_url, "filterset": filterset, "filter_query": query}


def _phase_choices() -> list[tuple[int, str]]:
    return cached("ui.phase_choices", {}, lambda: list(Phase.objects.order_by("sequence", "id").values_list("id", "name")))


@login_required
@require_GET
def order_list(request):
    """Filterable, searchable order table; HTMX swaps the table on filter and appends rows on 'load more'."""
    as_of = page_as_of(request)
    context = {"as_of": as_of, **_order_page(request, as_of)}
    if request.htmx and request.GET.get("after"):
        return render(request, "orders/partials/_order_rows.html", context)
    if request.htmx:
        return render(request, "orders/partials/_order_table.html", context)
    context.update({
        "statuses": OrderStatus.choices,
        "states": OrderState.choices,
        "selected_states": request.GET.getlist("state"),
        "families": ProductFamily.choices,
        "phases": _phase_choices(),
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
    from openpyxl import Workbook

    from prodplan.xlsx import safe_row

    as_of = page_as_of(request)
    filterset = _filterset(request, as_of)
    queryset = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("orders")
    sheet.append([*EXPORT_COLUMNS, "as_of"])
    stamp = timezone.localtime(as_of).replace(tzinfo=None)
    count = 0
    chunk: list[dict] = []

    def flush() -> None:
        for order in selectors.order_rows(as_of=as_of, rows=chunk):
            position = order["position"] or {}
            values = {
                "id": order["id"], "product_id": (order["product"] or {}).get("id"),
                "product_name": (order["product"] or {}).get("name"), "product_family": (order["product"] or {}).get("family"),
                "status": order["status"], "state": order["state"], "phase_id": (position.get("phase") or {}).get("id"),
                "phase_name": (position.get("phase") or {}).get("name"), "placement_basis": position.get("placement_basis"),
                "in_state_days": position.get("in_state_days") if order["state"] != OrderState.FINISHED else None,
                "created_at": order["created"], "finished_at": order["finished"], "age_days": order["age_days"],
                "lead_time_days": order["lead_time_days"], "threshold_scope": order["status_basis"]["threshold_scope"],
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


def build_gantt(timeline: dict, *, as_of: datetime) -> dict | None:
    """SVG geometry of the order's timeline: one lane per standard route step (missing ones flagged), then
    lanes for phases outside the route; bars are real executions (open ones run to as_of)."""
    phases = timeline["phases"]
    times = [p["start"] for p in phases if p["start"]] + [p["end"] for p in phases if p["end"]]
    if not times:
        return None
    start = min(times)
    end = max(times + [as_of for p in phases if p["state"] == "in_progress"])
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
            "bars": bars, "ticks": ticks, "as_of_x": as_of_x}


def _order_errors(order_id: int) -> list[dict]:
    from quality.models import QualityError

    names = selectors.phase_names()
    rows = list(QualityError.objects.filter(order_id=order_id).order_by("-severity", "event_time").values(
        "description", "severity", "found_phase_id", "found_order_phase_id", "culprit_order_phase_id", "event_time"))
    for row in rows:
        row["found_phase_name"] = names.get(row["found_phase_id"])
    return rows


def _prediction(*, order_id: int, as_of: datetime) -> dict:
    """Remaining time at as_of and lead-time prediction from mlops (the active model, else its baseline), when that
    app can answer.

    A stalled, abandoned or finished order gets no predicted finish: its state says why."""
    state = selectors.order_states(as_of=as_of, order_ids=[order_id]).get(order_id)
    if state and state["state"] in (OrderState.STALLED, OrderState.ABANDONED, OrderState.FINISHED):
        idle = (as_of - state["last_event_at"]).total_seconds() / 86400.0 if state["last_event_at"] else None
        return {"prediction": None, "state": state["state"], "idle_days": idle, "unavailable": None}
    try:
        from mlops.choices import ModelName
        from mlops.selectors import order_page_eta, predict
    except ImportError:
        return {"prediction": None, "unavailable": _("the model registry is not installed yet")}
    # the remaining time from the order's state at as_of (mlops: calibrated interval, latest backtest's coverage)
    eta = cached("ui.order_eta", {"order_id": order_id, "as_of": as_of},
                 lambda: order_page_eta(order_id=order_id, as_of=as_of))
    prediction = cached("ui.order_prediction", {"order_id": order_id}, lambda: predict(name=ModelName.LEAD_TIME, order_id=order_id))
    if prediction and prediction.get("predicted_finish") and str(prediction["predicted_finish"]) < as_of.isoformat():
        prediction = {**prediction, "predicted_finish_past": True}
    return {"prediction": prediction, "eta": eta,
            "unavailable": None if prediction or eta else _("no features for this order")}


@login_required
@require_GET
def order_detail(request, order_id: int):
    """One order: status, Gantt of real phases against the standard route, errors, team sizes, prediction."""
    as_of = page_as_of(request)
    if request.htmx and request.GET.get("widget") == "prediction":
        return render_widget(request, "orders/partials/_order_prediction.html", _prediction, order_id=order_id,
                             as_of=as_of)
    order = selectors.order_detail(order_id=order_id, as_of=as_of)
    if order is None:
        raise Http404(_("No such order."))
    timeline = selectors.order_phases(order_id=order_id, as_of=as_of)
    return render(request, "orders/order_detail.html", {
        "as_of": as_of,
        "order": order,
        "timeline": timeline,
        "gantt": build_gantt(timeline, as_of=as_of),
        "errors": _order_errors(order_id),
        "prediction_url": f"{reverse('order-detail', args=[order_id])}?widget=prediction",
    })
