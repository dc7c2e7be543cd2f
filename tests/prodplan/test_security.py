"""Security: throttling per IP and per key, CORS allow-list, zip bombs refused before parsing."""

from __future__ import annotations

import time
import zipfile

import pytest

from ingestion.reader import WorkbookError, check_container
from prodplan.throttling import AnonRateThrottle, ApiKeyRateThrottle

pytestmark = pytest.mark.django_db


def test_anonymous_requests_are_throttled_per_ip(client, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "api_key": "100/min"})
    responses = [client.get("/api/prodplan/orders") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert 0 < int(responses[3]["Retry-After"]) <= 60
    # another client IP has its own allowance
    assert client.get("/api/prodplan/orders", REMOTE_ADDR="10.1.2.3").status_code == 200


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
