"""The rendered-response cache: hits skip the view, die with the data version, and serve only allowed readers
(a valid key, a logged-in user, or anyone when reads are opened)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import ManufacturingOrder
from prodplan.cache import bump_data_version
from prodplan.response_cache import LOCAL
from prodplan.throttling import AnonRateThrottle, ApiKeyRateThrottle

KPIS = "/api/kpis/overview?as_of=2025-12-15&date_from=2025-06-01"


def queries_of(client, path: str):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    return response, len(captured)


@pytest.fixture
def client(keyed_client):
    """These tests read as the React frontend does: with an API key."""
    return keyed_client


def test_a_repeated_keyed_get_is_answered_from_the_rendered_cache_without_a_query(client, factory):
    first, first_queries = queries_of(client, KPIS)
    second, second_queries = queries_of(client, KPIS)
    assert first.status_code == second.status_code == 200
    assert first_queries > 0 and second_queries == 0
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"] == "application/json"
    assert second["X-Frame-Options"] == first["X-Frame-Options"]
    assert int(second["Content-Length"]) == len(first.content)
    assert second["X-Request-Id"] != first["X-Request-Id"]
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit")


def test_the_query_string_order_does_not_matter_but_its_values_do(client, factory):
    client.get("/api/prodplan/orders?status=DONE&page_size=5")
    _, reordered = queries_of(client, "/api/prodplan/orders?page_size=5&status=DONE")
    other, other_queries = queries_of(client, "/api/prodplan/orders?page_size=6&status=DONE")
    assert reordered == 0
    assert other_queries > 0 and len(other.json()["results"]) == 6


def test_a_new_data_version_is_never_answered_with_the_old_response(client, factory, django_capture_on_commit_callbacks):
    order = ManufacturingOrder.objects.filter(product_id=101).order_by("id").first()
    path = f"/api/prodplan/orders/{order.id}"
    before = client.get(path).json()
    ManufacturingOrder.objects.filter(id=order.id).update(product_id=102)
    assert client.get(path).json() == before  # same data version: the cached answer stands
    with django_capture_on_commit_callbacks(execute=True):
        bump_data_version()  # what every ingestion does when it commits
    after = client.get(path).json()
    assert before["product"]["id"] == 101 and after["product"]["id"] == 102


def test_a_logged_in_user_shares_the_cached_answer_of_a_key(client, supervisor_client, factory):
    keyed = client.get(KPIS)
    session = supervisor_client.get(KPIS)
    assert (keyed["X-Cache"], session["X-Cache"]) == ("miss", "hit")
    assert session.content == keyed.content


def test_anonymous_requests_are_never_served_from_the_cache_while_reads_are_closed(client, anonymous_api_client,
                                                                                    factory, settings):
    assert client.get(KPIS)["X-Cache"] == "miss"
    refused = anonymous_api_client.get(KPIS)
    assert refused.status_code == 401 and "X-Cache" not in refused
    settings.PUBLIC_READS = True  # a closed network opened reads: then anonymous readers share it too
    assert anonymous_api_client.get(KPIS)["X-Cache"] == "hit"


def test_an_unknown_authorization_scheme_takes_the_full_path(anonymous_api_client, factory):
    anonymous_api_client.credentials(HTTP_AUTHORIZATION="Bearer something")
    assert "X-Cache" not in anonymous_api_client.get(KPIS)


def test_views_that_do_not_opt_in_are_not_cached(client, factory):
    for path in ("/api/kpis/by-employee", "/api/health", "/api/smartinventory/real_stock"):
        client.get(path)
        client.get(path)
    assert not LOCAL.entries


def test_errors_are_not_cached(client, factory):
    assert client.get("/api/prodplan/orders/999999999").status_code == 404
    assert client.get("/api/prodplan/orders?status=NOPE").status_code == 400
    assert not LOCAL.entries


@pytest.mark.parametrize("rate", ["2/min"])
def test_cached_hits_still_count_against_the_per_key_throttle(client, factory, monkeypatch, rate):
    for throttle in (AnonRateThrottle, ApiKeyRateThrottle):
        monkeypatch.setattr(throttle, "THROTTLE_RATES", {"anon": "100/min", "api_key": rate, "session": "100/min"})
    codes = [client.get(KPIS).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert LOCAL.entries  # the second answer was a hit, and the third was refused all the same


@pytest.mark.parametrize("rate", ["2/min"])
def test_with_reads_opened_cached_hits_count_against_the_per_ip_throttle(anonymous_api_client, factory, monkeypatch,
                                                                         settings, rate):
    settings.PUBLIC_READS = True
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": rate, "api_key": "100/min"})
    codes = [anonymous_api_client.get(KPIS).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert LOCAL.entries


def test_a_new_data_version_drops_the_older_rendered_responses_of_this_process(client, factory, django_capture_on_commit_callbacks):
    client.get(KPIS)
    client.get("/api/prodplan/orders")
    assert len(LOCAL.entries) == 2
    with django_capture_on_commit_callbacks(execute=True):
        bump_data_version()
    client.get(KPIS)
    assert len(LOCAL.entries) == 1  # only the new version's answer is kept


def test_a_view_with_a_stricter_permission_is_never_cached():
    from prodplan.response_cache import _view_opts_in

    _view_opts_in.cache_clear()
    assert _view_opts_in("/api/kpis/overview")  # the default permission: cached
    assert not _view_opts_in("/api/ingestion/status/1")  # IsAuthenticated, not opted in
    from orders.api.views import KpiOverviewView

    original = KpiOverviewView.permission_classes
    try:
        from prodplan.api_keys import HasApiKeyOrStaff

        KpiOverviewView.permission_classes = [HasApiKeyOrStaff]
        _view_opts_in.cache_clear()
        assert not _view_opts_in("/api/kpis/overview")
    finally:
        KpiOverviewView.permission_classes = original
        _view_opts_in.cache_clear()
