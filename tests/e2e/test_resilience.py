"""Resilience and phones: a widget whose request fails says so and retries; at 390 px the menu collapses, the risk
queue is cards, the order timeline scrolls sideways with readable text and tables keep their first column in view."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
HTTP_ERROR = "This part of the page could not be loaded: the server answered with an error"
NETWORK_ERROR = "This part of the page could not be loaded: no connection to the server"


def _forget_expected_failures(web, marker: str):
    """The failures the test provoked are logged by the browser and htmx; any other error still fails the test."""
    web.js_errors[:] = [e for e in web.js_errors
                        if not (marker in e or "htmx:responseError" in e or "htmx:sendError" in e or "htmx:afterRequest" in e
                                or "status of 500" in e or "net::ERR_FAILED" in e)]


def test_a_failing_widget_shows_an_error_and_retry_loads_it(web, loaded):
    page = web.page
    web.login()
    broken = {"risk": True, "wip": True}

    def risk_route(route):
        if broken["risk"]:
            route.fulfill(status=500, content_type="text/html", body="<h1>Server Error (500)</h1>")
        else:
            route.continue_()

    def wip_route(route):
        if broken["wip"]:
            route.abort("failed")  # no answer at all: htmx:sendError
        else:
            route.continue_()

    page.route(lambda url: "widget=risk" in url, risk_route)
    page.route(lambda url: "widget=wip" in url, wip_route)
    web.goto("/")  # waits until no widget is still "loading": the failed ones must stop loading
    failed = page.locator(".widget-failed")
    assert failed.count() == 2
    body = page.locator("body")
    http_text = body.get_attribute("data-widget-http-error")
    network_text = body.get_attribute("data-widget-network-error")
    retry_text = body.get_attribute("data-widget-retry")
    assert http_text and network_text and retry_text and http_text != network_text
    # in the page's language (pt-PT here): the catalogue's translation, not the English source
    from django.utils import translation

    lang = page.locator("html").get_attribute("lang")
    assert lang.startswith("pt")
    with translation.override(lang):
        for shown, source in ((http_text, HTTP_ERROR), (network_text, NETWORK_ERROR), (retry_text, "Retry")):
            assert shown == translation.gettext(source) != source
    risk_box = page.locator('section[aria-labelledby="risk-title"] .widget-failed, .widget-failed[hx-get*="widget=risk"]').first
    wip_box = page.locator('.widget-failed[hx-get*="widget=wip"]')
    assert risk_box.get_attribute("role") == "alert"
    assert risk_box.locator(".widget-error-text").inner_text().strip() == f"{http_text} (HTTP 500)."
    assert wip_box.locator(".widget-error-text").inner_text().strip() == f"{network_text}."
    assert page.locator("#risk-table").count() == 0
    assert "Loading" not in page.locator("main").inner_text() and "A carregar" not in page.locator("main").inner_text()
    web.shot("widget-error")

    # retrying while the endpoint still fails shows the error again
    risk_box.locator("button.btn-retry").click()
    page.wait_for_function("() => document.querySelectorAll('.widget-failed[hx-get*=\"widget=risk\"]').length === 1")
    assert risk_box.locator("button.btn-retry").inner_text().strip() == retry_text

    # once the endpoint answers, Retry swaps the real widget in
    broken["risk"] = False
    broken["wip"] = False
    page.locator('.widget-failed[hx-get*="widget=risk"] button.btn-retry').click()
    page.wait_for_selector("#risk-table")
    page.locator('.widget-failed[hx-get*="widget=wip"] button.btn-retry').click()
    web.wait_widgets()
    assert page.locator(".widget-failed, .widget-error").count() == 0
    assert page.locator("#risk-table tbody tr").count() >= 1
    web.shot("widget-retried")
    _forget_expected_failures(web, "widget=")


def _phone_page(browser, live_server, name):
    from tests.e2e.conftest import Page

    context = browser.new_context(viewport=PHONE, locale="pt-PT", is_mobile=True, has_touch=True)
    context.set_default_timeout(20000)
    return context, Page(context.new_page(), live_server.url, name)


def test_phone_menu_risk_cards_timeline_and_sticky_columns(browser, live_server, loaded):
    from orders.models import OrderPhase

    context, web = _phone_page(browser, live_server, "phone")
    page = web.page
    try:
        web.login()
        # the menu: collapsed, the button opens and closes it
        toggle = page.locator("#nav-toggle")
        nav = page.locator("#main-nav")
        assert toggle.is_visible() and not nav.is_visible()
        assert toggle.get_attribute("aria-expanded") == "false"
        web.shot("nav-closed")
        toggle.click()
        assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
        web.shot("nav-open")
        toggle.click()
        assert not nav.is_visible() and toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        nav.locator('a[href="/orders/"]').click()
        page.wait_for_url(re.compile(r"/orders/$"))
        web.wait_widgets()
        assert not page.locator("#main-nav").is_visible()  # a new page starts with the menu closed

        # the orders table scrolls inside its panel and keeps the order column in view
        panel = page.locator("#orders-table")
        first_cell = page.locator("tr.order-row td").first
        assert first_cell.evaluate("el => getComputedStyle(el).position") == "sticky"
        # the table is wider than the phone (its columns need ~700 px): it scrolls inside its panel
        assert panel.evaluate("el => el.scrollWidth > el.clientWidth")
        panel_left = panel.evaluate("el => el.getBoundingClientRect().left")
        panel.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        assert panel.evaluate("el => el.scrollLeft") > 0
        assert first_cell.evaluate("el => el.getBoundingClientRect().left") >= panel_left - 1
        assert panel.get_attribute("tabindex") == "0"  # a scrolling region takes keyboard focus
        web.shot("orders-table")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]

        # the risk queue as cards: no visible header row, each cell labelled with its column
        web.goto("/")
        rows = page.locator("#risk-table tbody tr")
        assert rows.count() >= 1
        assert rows.first.evaluate("el => getComputedStyle(el).display") == "block"
        heads = page.locator("#risk-table thead th").evaluate_all("ths => ths.map(th => th.textContent.trim())")
        labels = rows.first.locator("td").evaluate_all("tds => tds.map(td => td.dataset.label)")
        assert labels == heads
        assert not page.locator("#risk-table thead").is_visible() or \
            page.locator("#risk-table thead").evaluate("el => el.getBoundingClientRect().width") <= 1
        assert rows.first.evaluate("el => el.getBoundingClientRect().right") <= PHONE["width"]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        web.shot("risk-cards")

        # the order timeline keeps its drawn size and scrolls sideways; its labels stay readable
        order_id = (OrderPhase.objects.filter(started_at__isnull=False, is_open=True)
                    .order_by("-order_id").values_list("order_id", flat=True).first())
        web.goto(f"/orders/{order_id}/")
        gantt_panel = page.locator('section[aria-labelledby="gantt-title"]')
        assert gantt_panel.evaluate("el => el.scrollWidth > el.clientWidth")
        label_height = page.locator("svg#gantt text.lane-label").first.evaluate("el => el.getBoundingClientRect().height")
        assert label_height >= 11  # 11px text drawn at (at least) its own size
        web.shot("order-timeline")
        gantt_panel.evaluate("el => { el.scrollLeft = 400; }")
        assert gantt_panel.evaluate("el => el.scrollLeft") > 0
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        web.shot("order-timeline-scrolled")
    finally:
        context.close()
    assert not web.js_errors, f"JavaScript errors: {web.js_errors}"
