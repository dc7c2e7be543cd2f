"""The quality page in a real browser (#19): the period filter reloads every widget for its window, the heatmap keeps
its phase headers and totals in view while it scrolls, and the Pareto key cuts long descriptions without overlap."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_quality_period_sticky_heatmap_and_pareto_key(web, loaded):
    web.login()
    page = web.page
    page.set_viewport_size({"width": 390, "height": 700})
    page.goto(web.base_url + "/quality/")
    web.wait_widgets()
    total_all = int(page.locator("#heatmap").get_attribute("data-total"))

    # The period form: every widget's lazy URL carries it, and the heatmap's total narrows.
    page.fill("input[name=date_from]", "2025-03-01")
    page.fill("input[name=date_to]", "2025-06-30")
    page.locator("#quality-period button[type=submit]").click()
    page.wait_for_url("**/quality/?date_from=2025-03-01&date_to=2025-06-30")
    web.wait_widgets()
    total_window = int(page.locator("#heatmap").get_attribute("data-total"))
    assert 0 < total_window < total_all
    assert page.locator("#quality-families tbody tr").count() > 0

    # Scrolled to its far corner, the heatmap's first header row, first column and totals stay inside its box.
    region = page.locator(".heatmap-scroll")
    region.evaluate("e => { e.scrollTop = e.scrollHeight; e.scrollLeft = e.scrollWidth; }")
    page.wait_for_timeout(200)
    box = region.bounding_box()
    for selector in ("#heatmap thead th.corner", "#heatmap tbody tr:first-child th",
                     "#heatmap thead th.total-col", "#heatmap tfoot .grand-total"):
        cell = page.locator(selector).bounding_box()
        assert box["x"] - 1 <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"] + 1, selector
        assert box["y"] - 1 <= cell["y"] and cell["y"] + cell["height"] <= box["y"] + box["height"] + 1, selector
    web.shot("heatmap-scrolled")

    # Pareto key: one line per rank, nothing overflows its line, the full description in the title.
    items = page.locator("#pareto-key .pareto-desc")
    assert items.count() > 0
    for i in range(items.count()):
        item = items.nth(i)
        assert item.get_attribute("title") and item.evaluate("e => e.getBoundingClientRect().height < 40")
        assert item.evaluate("e => e.parentElement.scrollWidth <= e.parentElement.clientWidth + 1")
