"""Hostile input is a 4xx naming what was wrong, never a 500 (one matrix of what an adversarial review sent).

Each case: a request, the status it must answer and the field (parameter) its answer names. The tests run on empty
domain tables (the `db` fixture truncates them): every check comes before any data is read."""

from __future__ import annotations

import json

import pytest

SUPERSCRIPT_TWO = "\u00b2"  # '²': str.isdigit() is True, int() raises
BAD_CURSOR = "cD1hYmM="  # base64 of "p=abc": a cursor whose position is not a number


@pytest.fixture
def sclient(supervisor_client):
    return supervisor_client


def _json(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()


# --- API GETs: (path, query, status, field named in the JSON answer; None: a search that matches nothing) -----

API_GETS = [
    ("/api/prodplan/orders", {"cursor": BAD_CURSOR}, 400, "cursor"),
    ("/api/whatif/runs", {"cursor": BAD_CURSOR}, 400, "cursor"),
    ("/api/ml/models", {"cursor": BAD_CURSOR}, 400, "cursor"),
    ("/api/prodplan/orders", {"cursor": "not base64 at all"}, 400, "cursor"),
    ("/api/prodplan/orders", {"q": SUPERSCRIPT_TWO}, 200, None),
    ("/api/prodplan/orders", {"q": "1" + SUPERSCRIPT_TWO}, 200, None),
    ("/api/ml/explain/leadtime", {"of_id": SUPERSCRIPT_TWO}, 400, "of_id"),
    ("/api/kpis/overview", {"date_to": "0001-01-01"}, 400, "date_to"),
    ("/api/kpis/overview", {"date_to": "9999-12-31"}, 400, "date_to"),
    ("/api/kpis/overview", {"date_from": "0001-01-01"}, 400, "date_from"),
    ("/api/kpis/overview", {"date_from": "9999-12-31"}, 400, "date_from"),
    ("/api/kpis/by-phase", {"date_from": "0001-01-01", "date_to": "2025-01-01"}, 400, "date_from"),
    ("/api/kpis/by-phase", {"date_to": "9999-12-31"}, 400, "date_to"),
    ("/api/kpis/by-product", {"date_from": "0001-01-01"}, 400, "date_from"),
    ("/api/kpis/by-product", {"date_to": "9999-12-31"}, 400, "date_to"),
    # PostgreSQL refuses a UTC offset beyond ±15:59 (schemathesis found this one as a 500)
    ("/api/prodplan/orders", {"created_after": "2025-01-26T18:20:03+21:22"}, 400, "created_after"),
    ("/api/prodplan/orders", {"finished_before": "2025-01-26T18:20:03-16:00"}, 400, "finished_before"),
]


@pytest.mark.parametrize(("path", "query", "code", "field"), API_GETS)
def test_api_get(api_client, db, path, query, code, field):
    response = api_client.get(path, query)
    assert response.status_code == code, response.content[:500]
    body = _json(response)
    if field:
        assert field in body, body
    else:
        assert body["results"] == []


# --- API POSTs (with an API key) ------------------------------------------------------------------------------

def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


API_POSTS = [
    ("/api/ml/predict/leadtime", json.dumps({"features": {"product_id": 10**30}}), 400, "product_id"),
    ("/api/ml/predict/risk", json.dumps({"features": {"product_id": 10**30}}), 400, "product_id"),
    ("/api/ml/predict/eta", json.dumps({"features": {"product_id": 10**30}}), 400, "product_id"),
    ("/api/ml/predict/leadtime", json.dumps({"features": {"product_id": -(10**30)}}), 400, "product_id"),
    ("/api/whatif/simulate", _nested(100_000), 400, "detail"),
    ("/api/whatif/simulate", '{"seed": ' + _nested(100_000) + "}", 400, "detail"),
    ("/api/ingestion/run", _nested(100_000), 400, "detail"),
    ("/api/ingestion/run", json.dumps({"inbox_name": "x" * 5000}), 400, "inbox_name"),
    ("/api/whatif/simulate", '{"seed": 1, "pad": "' + "x" * (11 * 1024 * 1024) + '"}', 413, "detail"),
]


@pytest.mark.parametrize(("path", "body", "code", "field"), API_POSTS, ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_api_post(keyed_client, path, body, code, field):
    response = keyed_client.post(path, body, content_type="application/json")
    assert response.status_code == code, response.content[:500]
    assert field in json.dumps(_json(response)), response.content[:500]


def test_api_body_too_big_as_multipart_is_413(keyed_client):
    response = keyed_client.post("/api/ingestion/run", {"inbox_name": "x" * (11 * 1024 * 1024)})
    assert response.status_code == 413, response.content[:500]
    assert "detail" in _json(response)


# --- pages (a logged-in supervisor): a 400 page naming the parameter, or (search) no match ---------------------

PAGES = [
    (f"/orders/?q={SUPERSCRIPT_TWO}", 200, None),
    (f"/orders/export.xlsx?q={SUPERSCRIPT_TWO}", 200, None),
    (f"/orders/export.xlsx?after={SUPERSCRIPT_TWO}", 200, None),  # the export is the whole filter: after is unused
    (f"/orders/?after={SUPERSCRIPT_TWO}", 400, "after"),
    ("/orders/?after=abc", 400, "after"),
    (f"/whatif/?run={SUPERSCRIPT_TWO}", 400, "run"),
    (f"/whatif/compare/?run=1&run={SUPERSCRIPT_TWO}", 400, "run"),
]


@pytest.mark.parametrize(("url", "code", "field"), PAGES)
def test_page(sclient, url, code, field):
    response = sclient.get(url)
    assert response.status_code == code, response.content[:500]
    if field:
        assert f"<code>{field}</code>" in response.content.decode()


@pytest.mark.parametrize("url", [f"/orders/?after={SUPERSCRIPT_TWO}", f"/whatif/?run={SUPERSCRIPT_TWO}"])
def test_page_htmx_widget(sclient, url):
    response = sclient.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "<code>" in response.content.decode()
