"""The quality-error list on the ingested demo workbook (#19): a heatmap cell's link lists exactly that cell's errors;
the period filter, the pages and the order links; bad parameters are a 400 naming them."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from html import unescape

import pytest
from django.db.models import Q
from django.utils import timezone

from orders.models import OrderPhase
from quality.models import QualityError

HX = {"HTTP_HX_REQUEST": "true"}
PAGE = 50




def _count(html: str) -> int:
    return int(re.search(r'id="error-count" data-count="(\d+)"', html).group(1))


def _rows(html: str) -> list[tuple[int, int]]:
    return [(int(e), int(o)) for e, o in re.findall(r'data-error-id="(\d+)" data-order-id="(\d+)"', html)]


def _in_scope(as_of):
    return QualityError.objects.filter(Q(event_time__isnull=True) | Q(event_time__lte=as_of))


def test_heatmap_cell_lists_exactly_its_errors(supervisor_client, ingested):
    as_of = ingested["as_of"]
    heat = supervisor_client.get("/quality/?widget=heatmap", **HX).content.decode()
    cells = [(unescape(u), int(n)) for u, n in re.findall(r'<a class="heat-link" href="([^"]+)" data-count="(\d+)"', heat)]
    others = sum(int(n) for n in re.findall(r'<span class="heat-other" data-count="(\d+)"', heat))  # "Other phases" cells
    totals = re.findall(r'<td class="num total-col row-total"><strong>(\d+)</strong>', heat)
    assert cells and sum(n for _u, n in cells) + others == sum(int(x) for x in totals)
    phase_of = dict(OrderPhase.objects.values_list("id", "phase_id"))
    errors = list(_in_scope(as_of).values("id", "order_id", "found_phase_id", "culprit_order_phase_id"))
    for url, n in cells:
        found, culprit = (int(x) for x in re.search(r"detected_phase=(\d+)&culprit_phase=(\d+)", url).groups())
        expected = {(e["id"], e["order_id"]) for e in errors
                    if e["found_phase_id"] == found and phase_of.get(e["culprit_order_phase_id"]) == culprit}
        html = supervisor_client.get(url).content.decode()
        assert _count(html) == n == len(expected), url
        shown = set(_rows(html))
        assert len(shown) == min(n, PAGE) and shown <= expected, url
        for _error, order in shown:
            assert f'<a href="/orders/{order}/">{order}</a>' in html


def test_pages_newest_first_and_the_period_filter(supervisor_client, ingested, pinned_queries):
    as_of = ingested["as_of"]
    scope = _in_scope(as_of)
    supervisor_client.get("/quality/errors/?page=1")  # phase names cached
    with pinned_queries("quality.test_errors_list.test_pages_newest_first_and_the_period_filter"):
        first = supervisor_client.get("/quality/errors/").content.decode()
    assert _count(first) == scope.count() > PAGE
    second = supervisor_client.get("/quality/errors/?page=2").content.decode()
    ordered = [e for e, _o in _rows(first) + _rows(second)]
    times = dict(scope.values_list("id", "event_time"))
    keys = [(times[e] is None, -(times[e].timestamp() if times[e] else 0), -e) for e in ordered]
    assert len(ordered) == 2 * PAGE == len(set(ordered)) and keys == sorted(keys)
    assert 'rel="next" href="/quality/errors/?page=3"' in second and 'rel="prev" href="/quality/errors/?page=1"' in second

    dated = sorted(t for t in times.values() if t)
    start, end = timezone.localtime(dated[len(dated) // 4]).date(), timezone.localtime(dated[len(dated) // 2]).date()
    since = timezone.make_aware(datetime.combine(start, time.min))
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    expected = scope.filter(event_time__gte=since, event_time__lt=until).count()
    html = supervisor_client.get(f"/quality/errors/?since={start}&until={end}").content.decode()
    assert _count(html) == expected > 0
    assert f'name="since" value="{start}"' in html and f'name="until" value="{end}"' in html
    undated = scope.filter(event_time__isnull=True).count()
    if undated:
        assert "undated" in html or "sem data" in html


@pytest.mark.parametrize("query, param", [
    ("since=2025-13-01", "since"), ("until=yesterday", "until"), ("detected_phase=x", "detected_phase"),
    ("culprit_phase=-1", "culprit_phase"), ("page=²", "page"),
])
def test_bad_parameter_is_a_400_naming_it(supervisor_client, ingested, query, param):
    response = supervisor_client.get(f"/quality/errors/?{query}")
    assert response.status_code == 400 and f"<code>{param}</code>" in response.content.decode()


def test_error_list_needs_login(client, db):
    response = client.get("/quality/errors/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
