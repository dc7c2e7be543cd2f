"""The page kit every page app uses: the page's as-of, lazily loaded widgets, Chart.js configs, page extensions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from prodplan.asof import resolve_as_of

logger = logging.getLogger(__name__)


def page_as_of(request) -> datetime:
    """'Now' of a page: ?as_of= when given, else the data's as-of, else the clock.

    An invalid ?as_of= raises InvalidAsOf (a BadRequest): the answer is a 400 page naming the parameter and
    the accepted range (prodplan.api_errors.bad_request), never a silent fallback. Called before any widget
    is computed, so render_widget's error box does not swallow it."""
    return resolve_as_of(request.GET)


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


# --- page extensions: an app above a page's owner adds to that page without the owner importing it -------------
#
# Filled in AppConfig.ready(): ingestion adds the freshness chip to the overview, quality the order's errors and
# mlops the order's prediction widget to the order page. The owner asks for what is registered under its page.

_PANELS: dict[str, dict[str, Callable[..., object]]] = {}
_WIDGETS: dict[str, dict[str, tuple[str, Callable[..., dict]]]] = {}


def add_panel(page: str, name: str, compute: Callable[..., object]) -> None:
    """On `page`, context[name] = compute(**the page's arguments) (computed with the page, not lazily)."""
    _PANELS.setdefault(page, {})[name] = compute


def panels(page: str, **kwargs) -> dict:
    """The registered panels of a page, computed."""
    return {name: compute(**kwargs) for name, compute in _PANELS.get(page, {}).items()}


def add_widget(page: str, name: str, template: str, compute: Callable[..., dict]) -> None:
    """On `page`, ?widget=name over HTMX renders template with compute(**the page's arguments)."""
    _WIDGETS.setdefault(page, {})[name] = (template, compute)


def extra_widget(request, page: str, **kwargs) -> HttpResponse | None:
    """The response of a widget registered on `page` when this HTMX request asks for one, else None."""
    name = request.GET.get("widget")
    registered = _WIDGETS.get(page, {}).get(name) if request.htmx else None
    if registered is None:
        return None
    template, compute = registered
    return render_widget(request, template, compute, **kwargs)
