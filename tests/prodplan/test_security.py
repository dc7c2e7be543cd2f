"""Security: throttling per IP, per session and per key (forwarded headers trusted only behind configured proxies),
login attempt limits, CORS allow-list, zip bombs refused before parsing."""

from __future__ import annotations

import time
import zipfile

import pytest

from ingestion.reader import WorkbookError, check_container
from prodplan.throttling import AnonRateThrottle, ApiKeyRateThrottle, SessionRateThrottle

pytestmark = pytest.mark.django_db


def test_anonymous_requests_are_throttled_per_ip(client, monkeypatch, settings):
    settings.PUBLIC_READS = True  # anonymous reads: the per-IP throttle guards a closed network's open API
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "api_key": "100/min"})
    responses = [client.get("/api/prodplan/orders") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert 0 < int(responses[3]["Retry-After"]) <= 60
    # another client IP has its own allowance
    assert client.get("/api/prodplan/orders", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_a_rotating_x_forwarded_for_does_not_reset_the_per_ip_allowance(client, monkeypatch, settings):
    settings.PUBLIC_READS = True  # anonymous reads: the per-IP throttle guards a closed network's open API
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "api_key": "100/min"})
    codes = [client.get("/api/prodplan/orders", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]


def test_behind_one_trusted_proxy_the_client_address_is_the_last_forwarded_one(client, monkeypatch, settings):
    settings.PUBLIC_READS = True  # anonymous reads: the per-IP throttle guards a closed network's open API
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "2/min", "api_key": "100/min"})
    # the proxy appends the real client: a spoofed first entry changes nothing, another real client has its own allowance
    spoofed = [client.get("/api/prodplan/orders", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.9").status_code
               for i in range(3)]
    assert spoofed == [200, 200, 429]
    assert client.get("/api/prodplan/orders", HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 200


def test_logged_in_sessions_are_throttled_per_user(supervisor_client, monkeypatch):
    rates = {"anon": "100/min", "api_key": "100/min", "session": "2/min"}
    for throttle in (AnonRateThrottle, SessionRateThrottle, ApiKeyRateThrottle):
        monkeypatch.setattr(throttle, "THROTTLE_RATES", rates)
    codes = [supervisor_client.get("/api/prodplan/orders").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_login_is_locked_after_repeated_wrong_passwords_even_with_the_right_one(client, settings):
    from django.contrib.auth.models import User

    User.objects.create_user("brute-target", password="the-right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        wrong = client.post("/accounts/login/", {"username": "brute-target", "password": "wrong"})
        assert wrong.status_code in (200, 429)
    right = client.post("/accounts/login/", {"username": "brute-target", "password": "the-right-password-123"})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # another address is locked out of this account too (the username alone is over the limit)
    other = client.post("/accounts/login/", {"username": "brute-target", "password": "the-right-password-123"},
                        REMOTE_ADDR="10.9.8.7")
    assert other.status_code == 429 and "_auth_user_id" not in client.session


def test_a_successful_login_below_the_limit_resets_the_count(client, settings):
    from django.contrib.auth.models import User

    User.objects.create_user("careless", password="the-right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": "careless", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "careless", "password": "the-right-password-123"}).status_code == 302
    client.logout()
    client.post("/accounts/login/", {"username": "careless", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "careless", "password": "the-right-password-123"}).status_code == 302


def test_api_key_requests_are_throttled_per_key(keyed_client, monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"anon": "100/min", "api_key": "2/min"})
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "100/min", "api_key": "2/min"})
    codes = [keyed_client.get("/api/prodplan/orders").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_cors_allows_only_listed_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://planner.example.com"]
    allowed = client.options("/api/prodplan/orders", HTTP_ORIGIN="https://planner.example.com",
                             HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert allowed["Access-Control-Allow-Origin"] == "https://planner.example.com"
    refused = client.options("/api/prodplan/orders", HTTP_ORIGIN="https://evil.example.com",
                             HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in refused


def test_cors_is_closed_by_default(client, settings):
    settings.CORS_ALLOWED_ORIGINS = []
    response = client.get("/api/prodplan/orders", HTTP_ORIGIN="https://planner.example.com")
    assert "Access-Control-Allow-Origin" not in response


def test_zip_bomb_is_refused_quickly(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 1024 * 1024))
    started = time.perf_counter()
    with pytest.raises(WorkbookError, match="zip bomb"):
        check_container(bomb)
    assert time.perf_counter() - started < 2


def test_employee_names_never_reach_anonymous_responses(ingested, api_client):
    from orders.models import Employee

    names = list(Employee.objects.values_list("name", flat=True)[:50])
    assert names
    for path in ("/api/kpis/by-employee", "/api/prodplan/orders", "/api/quality/overview", "/api/health"):
        body = api_client.get(path).content.decode()
        assert not any(name and name in body for name in names), path
