"""Click-through in a real browser (#19): a bottleneck row and a WIP bar land on their orders, sorting and filtering
push the URL, Back restores the list with its filters in the form, a heatmap cell lands on its errors."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _count(page) -> int:
    return int(page.locator("#order-count").get_attribute("data-count"))


def test_supervisor_clicks_through_to_the_orders(web, loaded):
    web.login()
    page = web.page

    # A bottleneck row: the orders waiting for that phase (or not started at it), as many as "Waiting now" says.
    row = page.locator("#bottleneck-table tbody tr").first
    waiting = row.locator("[data-waiting]")
    promised = int(waiting.get_attribute("data-waiting")) if waiting.count() else None
    row.locator("a.bottleneck-link").click()
    page.wait_for_url(re.compile(r"/orders/\?current_phase=\d+&state=waiting&state=not_started"))
    web.wait_widgets()
    if promised is not None:
        assert _count(page) == promised
    assert page.locator('input[name=state][value="waiting"]').is_checked()
    assert page.locator('input[name=state][value="not_started"]').is_checked()
    web.shot("bottleneck-orders")

    # A WIP bar (Chart.js): a click on the first bar opens the list of that phase and state.
    page.goto(web.base_url + "/")
    web.wait_widgets()
    page.wait_for_function("() => document.querySelector('canvas[data-config=chart-wip]')._chart")
    bar = page.evaluate("""() => {
        const chart = document.querySelector('canvas[data-config=chart-wip]')._chart;
        for (let d = 0; d < chart.data.datasets.length; d++) {
            const meta = chart.getDatasetMeta(d);
            for (let i = 0; i < meta.data.length; i++) {
                if (chart.data.datasets[d].data[i] > 0 && chart.data.datasets[d].links[i]) {
                    const el = meta.data[i];
                    return {x: (el.x + el.base) / 2, y: el.y, n: chart.data.datasets[d].data[i],
                            url: chart.data.datasets[d].links[i]};
                }
            }
        }
        return null; }""")
    assert bar is not None
    box = page.locator("canvas[data-config=chart-wip]").bounding_box()
    page.mouse.click(box["x"] + bar["x"], box["y"] + bar["y"])
    page.wait_for_url(re.compile(re.escape(bar["url"]) + "$"))
    web.wait_widgets()
    assert _count(page) == bar["n"]

    # Sort by lead time (longest first), filter finished orders: the URL follows; Back from an order restores both,
    # and a second Back the list before the filter.
    page.goto(web.base_url + "/orders/")
    page.locator('a.sort-link[data-sort="lead_time"]').click()
    page.wait_for_url(re.compile(r"sort=-lead_time"))
    page.wait_for_function("() => document.querySelector('th[aria-sort=descending] [data-sort=lead_time]')")
    sorted_url = page.url
    page.check('input[name=state][value="finished"]')
    page.wait_for_url(re.compile(r"state=finished.*sort=-lead_time|sort=-lead_time.*state=finished"))
    page.wait_for_function("() => document.querySelector('#orders-table[data-filter-query*=finished]')")
    filtered_url = page.url
    ids = page.locator("tr.order-row").evaluate_all("rows => rows.map(r => r.dataset.orderId)")
    assert ids and _count(page) >= len(ids)
    web.shot("orders-sorted-filtered")
    page.locator("tr.order-row a").first.click()
    page.wait_for_url(re.compile(r"/orders/\d+/$"))
    page.go_back()
    page.wait_for_url(filtered_url)
    page.wait_for_load_state("load")
    assert page.locator('input[name=state][value="finished"]').is_checked()
    assert page.locator("tr.order-row").evaluate_all("rows => rows.map(r => r.dataset.orderId)") == ids
    assert page.locator('input[name=sort]').input_value() == "-lead_time"
    web.shot("orders-after-back")
    page.go_back()
    page.wait_for_url(sorted_url)
    page.wait_for_function("() => !document.querySelector('input[name=state][value=finished]').checked")

    # A heatmap cell: the errors found at that phase and caused at the other, as many as the cell says.
    page.goto(web.base_url + "/quality/")
    web.wait_widgets()
    cell = page.locator("a.heat-link").first
    n = int(cell.get_attribute("data-count"))
    cell.click()
    page.wait_for_url(re.compile(r"/quality/errors/\?detected_phase=\d+&culprit_phase=\d+"))
    assert int(page.locator("#error-count").get_attribute("data-count")) == n
    assert page.locator("tr.error-row").count() == min(n, 50)
    web.check_accessibility()
    web.shot("heatmap-errors")
