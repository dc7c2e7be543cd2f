"""Click-through on the ingested demo workbook (#19): overview links land on the orders they promise, the order list
sorts, counts, shows its tiles, keeps its filters on a history restore, and refuses a bad sort or filter."""

from __future__ import annotations

import re
from collections import Counter
from html import unescape

import pytest

from orders.models import ManufacturingOrder

HX = {"HTTP_HX_REQUEST": "true"}
PAGE = 50




def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-order-id="(\d+)"', html)]


def _count(html: str) -> int:
    return int(re.search(r'id="order-count" data-count="(\d+)"', html).group(1))


def _links(html: str, css: str) -> list[str]:
    return [unescape(u) for u in re.findall(rf'<a class="{css}" href="([^"]+)"', html)]


def _open_rows(as_of) -> list[dict]:
    from orders.selectors import open_orders_at

    return open_orders_at(as_of=as_of)


def _existing_ids(as_of) -> list[int]:
    return [o["id"] for o in ManufacturingOrder.objects.values("id", "created_at")
            if o["created_at"] is None or o["created_at"] <= as_of]


def _busy_as_of(as_of):
    """The date, among the data's as-of and every 15th day of the four years before, with the most late, at risk and
    stalled orders by the order state (the small demo data has few at its as-of)."""
    from datetime import timedelta

    def busy(t) -> int:
        return sum(1 for r in _open_rows(t) if r["status"] in ("LATE", "AT_RISK") or r["state"] == "stalled")

    return max((as_of - timedelta(days=k) for k in range(0, 4 * 365, 15)), key=busy)


def _assert_lists(client, url: str, expected: set[int]) -> None:
    """The order list at url counts exactly the expected orders and shows the newest of them first."""
    html = client.get(url, **HX).content.decode()
    assert _count(html) == len(expected), url
    assert _ids(html) == sorted(expected, reverse=True)[:PAGE], url


@pytest.mark.parametrize("when", ["data", "busy"])
def test_overview_links_land_on_the_orders_they_promise(supervisor_client, ingested, when):
    from urllib.parse import quote

    as_of = ingested["as_of"] if when == "data" else _busy_as_of(ingested["as_of"])
    rows = _open_rows(as_of)
    suffix = "" if when == "data" else f"&as_of={quote(as_of.isoformat())}"
    get = supervisor_client.get

    class At:  # every request at the chosen as-of (the overview's links carry an explicit ?as_of=)
        @staticmethod
        def get(url, **kw):
            if suffix and "as_of=" not in url:
                url += suffix if "?" in url else "?" + suffix[1:]
            return get(url, **kw)

    supervisor_client = At()  # noqa: F841 - shadows the client for the requests below

    def where(phase_id: int, states: set[str]) -> set[int]:
        return {r["order_id"] for r in rows if r["phase_id"] == phase_id and r["state"] in states}

    # Bottleneck rows: the orders waiting for the phase or not started at it ("Waiting now").
    bottlenecks = supervisor_client.get("/?widget=bottlenecks", **HX).content.decode()
    links = _links(bottlenecks, "bottleneck-link")
    assert links
    for row in re.findall(r"<tr>.*?</tr>", bottlenecks, re.S)[1:]:  # after the header
        url = _links(row, "bottleneck-link")[0]
        phase_id = int(re.search(r"current_phase=(\d+)", url).group(1))
        expected = where(phase_id, {"waiting", "not_started"})
        waiting = re.search(r'data-waiting="(\d+)"', row)
        assert (int(waiting.group(1)) if waiting else 0) == len(expected), url
        _assert_lists(supervisor_client, url, expected)

    # WIP bars: one link per phase and state, counting what the bar shows.
    wip = supervisor_client.get("/?widget=wip", **HX).content.decode()
    cells = [(unescape(u), int(n)) for u, n in re.findall(r'<a class="wip-link" href="([^"]+)" data-count="(\d+)"', wip)]
    assert cells
    for url, n in cells:
        phase_id = int(re.search(r"current_phase=(\d+)", url).group(1))
        state = re.search(r"state=(\w+)", url).group(1)
        expected = where(phase_id, {state})
        assert len(expected) == n, url
        _assert_lists(supervisor_client, url, expected)
    # Stalled: every stalled order at as_of.
    stalled = {r["order_id"] for r in rows if r["state"] == "stalled"}
    if stalled:
        assert 'id="stalled-all" href="/orders/?state=stalled' in wip
    _assert_lists(supervisor_client, "/orders/?state=stalled", stalled)

    # Risk reasons: each link lists the orders sharing that reason, the clicked order among them.
    risk = supervisor_client.get("/?widget=risk", **HX).content.decode()
    reason_links = 0
    for row in re.findall(r"<tr>.*?</tr>", risk, re.S):
        order = re.search(r'href="/orders/(\d+)/"', row)
        if not order:
            continue
        order_id = int(order.group(1))
        for url in _links(row, "reason-link"):
            reason_links += 1
            query = dict(re.findall(r"(\w+)=(\w+)", url.split("?", 1)[1]))
            if "status" in query:
                expected = {r["order_id"] for r in rows if r["status"] == query["status"]}
            elif "current_phase" in query:
                expected = where(int(query["current_phase"]), {query["state"]})
            else:
                expected = {o["id"] for o in ManufacturingOrder.objects.filter(product_id=int(query["product"]))
                            .values("id", "created_at") if o["created_at"] is None or o["created_at"] <= as_of}
            assert order_id in expected, url
            html = supervisor_client.get(url, **HX).content.decode()
            assert _count(html) == len(expected), url
    assert reason_links > 0


def test_count_and_tiles_equal_the_state_summary(supervisor_client, ingested):
    from urllib.parse import quote

    from orders.selectors import state_summary
    from tests.orders.test_views import _states_at

    as_of = _busy_as_of(ingested["as_of"])
    at = f"as_of={quote(as_of.isoformat())}"
    html = supervisor_client.get(f"/orders/?{at}").content.decode()
    assert _count(html) == len(_existing_ids(as_of))
    tiles = {k: int(n) for k, n in re.findall(r'data-tile="(\w+)" data-count="(\d+)"', html)}
    summary = state_summary(as_of=as_of)
    independent = _states_at(as_of)
    statuses = Counter(s["status"] for s in independent.values())
    assert tiles["stalled"] == summary["states"]["stalled"] == sum(1 for s in independent.values() if s["state"] == "stalled")
    assert tiles["late"] == statuses["LATE"] and tiles["at_risk"] == statuses["AT_RISK"]
    assert sum(tiles.values()) > 0
    # each tile links to the filter that lists exactly its orders
    for key, query in (("late", "status=LATE"), ("at_risk", "status=AT_RISK"), ("stalled", "state=stalled")):
        href = f"/orders/?{query}&amp;{at.replace('%', '%')}"
        assert f'data-tile="{key}" data-count="{tiles[key]}" href="{href}"' in html, key
        assert _count(supervisor_client.get(f"/orders/?{query}&{at}", **HX).content.decode()) == tiles[key]
    # a filtered count: the state summary's finished orders
    assert _count(supervisor_client.get(f"/orders/?state=finished&{at}", **HX).content.decode()) == summary["states"]["finished"]


@pytest.mark.parametrize("sort", ["age", "-age", "lead_time", "-lead_time", "state", "-state", "phase", "-phase"])
def test_sorting_orders_rows(supervisor_client, ingested, sort):
    from orders.choices import OrderState
    from orders.selectors import phase_choices

    as_of = ingested["as_of"]
    open_rows = {r["order_id"]: r for r in _open_rows(as_of)}
    leads = dict(ManufacturingOrder.objects.values_list("id", "lead_time_days"))
    rank_state = list(OrderState.values)
    rank_phase = [pid for pid, _name in phase_choices()]
    key = sort.removeprefix("-")

    def value(oid):
        row = open_rows.get(oid)
        if key == "age":
            return row["age_days"] if row else None
        if key == "lead_time":
            return None if row else leads[oid]
        if key == "state":
            return rank_state.index(row["state"] if row else "finished")
        return rank_phase.index(row["phase_id"]) if row and row["phase_id"] in rank_phase else None

    ids = _existing_ids(as_of)
    valued = [(value(i), i) for i in ids]
    present = sorted((t for t in valued if t[0] is not None), key=lambda t: (-t[0] if sort[0] == "-" else t[0], -t[1]))
    expected = [i for _v, i in present] + sorted((i for v, i in valued if v is None), reverse=True)
    first = supervisor_client.get(f"/orders/?sort={sort}", **HX).content.decode()
    assert _ids(first) == expected[:PAGE] and _count(first) == len(ids)
    shown = [value(i) for i in _ids(first) if value(i) is not None]
    assert shown == sorted(shown, reverse=sort[0] == "-")
    more = supervisor_client.get(f"/orders/?sort={sort}&offset={PAGE}", **HX).content.decode()
    assert _ids(more) == expected[PAGE: 2 * PAGE]
    # the active column says so; its link toggles the direction
    toggled = sort.removeprefix("-") if sort.startswith("-") else f"-{sort}"
    assert f'data-sort="{key}" href="/orders/?sort={toggled}"' in first
    assert ('aria-sort="descending"' if sort[0] == "-" else 'aria-sort="ascending"') in first


def test_sorted_filtered_list_and_pinned_queries(supervisor_client, ingested, pinned_queries):
    as_of = ingested["as_of"]
    waiting = {r["order_id"]: r for r in _open_rows(as_of) if r["state"] in ("waiting", "not_started")}
    supervisor_client.get("/orders/?status=DONE", **HX)  # the as-of's thresholds and open orders cached
    with pinned_queries("orders.test_click_through.test_sorted_filtered_list_and_pinned_queries"):
        html = supervisor_client.get("/orders/?state=waiting&state=not_started&sort=-age").content.decode()
    expected = sorted(waiting, key=lambda i: (-waiting[i]["age_days"], -i))
    assert _count(html) == len(waiting) and _ids(html) == expected[:PAGE]
    # the sort goes with the filter form (a hidden input of the form) and the export keeps the filter only
    assert '<input type="hidden" name="sort" value="-age" form="order-filters">' in html
    assert 'href="/orders/export.xlsx?state=waiting&amp;state=not_started"' in html


def test_history_restore_gets_the_page_with_its_filters(supervisor_client, ingested):
    from orders.selectors import phase_choices

    phase_id = phase_choices()[0][0]
    url = f"/orders/?state=waiting&current_phase={phase_id}&q=1&sort=age"
    response = supervisor_client.get(url, **HX)
    partial = response.content.decode()
    assert "<h1" not in partial and 'id="orders-table"' in partial
    # the same URL answers the page or its table: caches (the browser's Back) must keep them apart
    assert "HX-Request" in response["Vary"] and "HX-Request" in supervisor_client.get(url)["Vary"]
    html = supervisor_client.get(url, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HX).content.decode()
    assert html.count("<h1") == 1
    assert re.search(r'name="state" value="waiting" checked', html)
    assert not re.search(r'name="state" value="in_progress" checked', html)
    assert f'<option value="{phase_id}" selected>' in html
    assert 'name="q" value="1"' in html and 'name="sort" value="age"' in html
    assert 'hx-push-url="true"' in html


@pytest.mark.parametrize("query, param", [
    ("sort=bogus", "sort"), ("sort=-", "sort"), ("sort=--age", "sort"), ("current_phase=abc", "current_phase"),
    ("state=nope", "state"), ("status=LATE&status=SOON", "status"), ("sort=age&offset=x", "offset"),
])
def test_bad_sort_or_filter_is_a_400_naming_it(supervisor_client, ingested, query, param):
    for headers in ({}, HX):
        response = supervisor_client.get(f"/orders/?{query}", **headers)
        assert response.status_code == 400, query
        assert f"<code>{param}</code>" in response.content.decode()
    # the export ignores the page's sort and offset, and refuses a bad filter the same way
    assert supervisor_client.get(f"/orders/export.xlsx?{query}").status_code == (200 if param in ("sort", "offset") else 400)
