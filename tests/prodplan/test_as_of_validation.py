"""An invalid as_of is a 400 naming the parameter and the accepted range, on every endpoint and page.

The HTTP tests run on empty domain tables (the `db` fixture truncates them): the check comes before any data is read,
so a page answers 400 even with nothing ingested, never a 500 and never a silent fallback."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.exceptions import ValidationError

from prodplan.asof import AS_OF_MAX, AS_OF_MIN, InvalidAsOf, as_of_from, parse_as_of

BAD = ["2025-02-30", "0001-01-01", "9999-12-31", "amanhã"]
GOOD = ["2025-12-15T10:30:00+00:00", "2000-01-01", "2100-12-31"]  # the range's ends are inclusive
HX = {"HTTP_HX_REQUEST": "true"}

# Every GET endpoint that reads ?as_of= (test_the_list_is_every_documented_as_of_endpoint keeps it complete),
# with the other parameters it needs to get as far as as_of.
API = {
    "/api/prodplan/orders": {},
    "/api/prodplan/orders/{of_id}": {},
    "/api/prodplan/orders/{of_id}/phases": {},
    "/api/prodplan/orders/states": {},
    "/api/prodplan/orders/stalled": {},
    "/api/prodplan/schedule/current": {},
    "/api/prodplan/bottlenecks": {},
    "/api/prodplan/risk_queue": {},
    "/api/kpis/overview": {},
    "/api/kpis/by-phase": {},
    "/api/kpis/by-product": {},
    "/api/quality/overview": {},
    "/api/quality/by-phase": {},
    "/api/quality/by-product": {},
    "/api/quality/heatmap": {},
    "/api/quality/escapes": {},
    "/api/quality/risk": {"phase": 1},
    "/api/smartinventory/wip": {},
    "/api/smartinventory/wip_mass": {},
    "/api/smartinventory/gelcoat_theoretical_usage": {},
    "/api/ml/explain/leadtime": {},
    "/api/ml/explain/risk": {},
    "/api/ml/explain/eta": {},
}

# Every page that reads ?as_of= (prodplan.pages.page_as_of), as a full page and as its HTMX widgets.
PAGES = ["/", "/orders/", "/orders/export.xlsx", "/orders/1/", "/quality/", "/inventory/"]
WIDGETS = ["/?widget=kpis", "/?widget=risk", "/orders/", "/orders/?after=10", "/orders/1/?widget=prediction",
           "/quality/?widget=heatmap", "/quality/?widget=pareto", "/inventory/?widget=mass", "/inventory/?widget=gelcoat"]


def _url(path: str) -> str:
    return path.replace("{of_id}", "1")


def _with(url: str, as_of: str) -> str:
    from urllib.parse import quote

    return f"{url}{'&' if '?' in url else '?'}as_of={quote(as_of)}"


def _names_param_and_range(text: str) -> bool:
    return "as_of" in text and AS_OF_MIN.isoformat() in text and AS_OF_MAX.isoformat() in text


@pytest.fixture
def sclient(supervisor_client):
    return supervisor_client


# --- the one rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [*BAD, "1999-12-31", "2101-01-01", "2025-13-01T00:00", "2025-02-30T10:00",
                                 "2025-01-01T00:00+25:00", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00-05:00",
                                 "12/15/2025", "2025-12-15 ; drop"])
def test_invalid_values_name_the_parameter_and_the_range(raw):
    with pytest.raises(InvalidAsOf) as caught:
        as_of_from(raw)
    assert "2000-01-01 .. 2100-12-31" in caught.value.message()
    with pytest.raises(ValidationError) as api:
        parse_as_of(raw)
    assert list(api.value.detail) == ["as_of"] and "2000-01-01 .. 2100-12-31" in str(api.value.detail["as_of"][0])


@pytest.mark.parametrize("raw", ["2000-01-01", "2000-01-01T00:00:00", "2100-12-31", "2100-12-31T23:59:59+14:00",
                                 "2000-01-01T00:00:00-12:00", "2025-12-15T10:30:00Z"])
def test_the_range_is_inclusive_and_aware(raw):
    parsed = as_of_from(raw)
    assert parsed.tzinfo is not None and AS_OF_MIN.year <= parsed.year <= AS_OF_MAX.year + 1


@pytest.mark.parametrize("raw", [None, ""])
def test_absent_or_blank_is_no_as_of(raw):
    assert as_of_from(raw) is None and parse_as_of(raw) is None


@pytest.mark.parametrize("raw", [20251215, ["2025-12-15"], {"date": "2025-12-15"}])
def test_a_body_value_that_is_not_text_is_invalid(raw):
    with pytest.raises(ValidationError):
        parse_as_of(raw)


def test_a_long_value_is_echoed_shortened():
    message = InvalidAsOf("x" * 500, out_of_range=False).message()
    assert len(message) < 200 and "…" in message


# --- API --------------------------------------------------------------------------------------------------


def test_the_list_is_every_documented_as_of_endpoint(api_client, db):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    documented = {path for path, operations in schema["paths"].items()
                  if any(p["name"] == "as_of" for p in operations.get("get", {}).get("parameters", []))}
    assert documented == set(API)


# One test per endpoint or page, looping over the values: a database test costs ~1 s of set-up, the request ~10 ms.
@pytest.mark.parametrize("path", list(API))
def test_api_answers_400_naming_as_of_and_the_range(keyed_client, path):
    for raw in BAD:
        response = keyed_client.get(_url(path), {**API[path], "as_of": raw})
        assert response.status_code == 400, (raw, response.content)
        body = response.json()
        assert list(body) == ["as_of"], (raw, body)
        assert _names_param_and_range(response.content.decode()), (raw, body)


@pytest.mark.parametrize("path", [p for p in API if "{" not in p])
def test_api_valid_values_still_answer(keyed_client, path):
    for raw in GOOD:
        response = keyed_client.get(_url(path), {**API[path], "as_of": raw})
        assert response.status_code == 200, (raw, response.content)


@pytest.mark.parametrize("path", [p for p in API if "{" in p])
def test_api_order_with_a_valid_as_of_gets_to_the_lookup(keyed_client, path):
    for raw in GOOD:
        assert keyed_client.get(_url(path), {"as_of": raw}).status_code == 404, raw  # empty tables


def test_whatif_simulate_body_as_of(keyed_client):
    for raw in [*BAD, "2025-12-15T10:00:00+25:00", "2025-13-01T00:00:00"]:
        response = keyed_client.post("/api/whatif/simulate", {"as_of": raw, "horizon_days": 7}, format="json")
        assert response.status_code == 400, (raw, response.content)
        assert list(response.json()) == ["as_of"] and _names_param_and_range(response.content.decode()), raw


def test_schema_documents_the_range(api_client, db):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/prodplan/schedule/current", "/api/prodplan/orders", "/api/kpis/overview"):
        (param,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "as_of"]
        assert "2000-01-01" in param["description"] and "2100-12-31" in param["description"], path


# --- pages ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_page_answers_a_400_page_in_portuguese_first(sclient, url):
    for raw in BAD:
        response = sclient.get(_with(url, raw))
        assert response.status_code == 400, raw
        body = response.content.decode()
        assert _names_param_and_range(body), raw
        assert "Pedido inválido" in body and "O parâmetro <code>as_of</code> não é válido" in body
        assert 'href="/orders/"' in body  # the site's page, with its navigation


@pytest.mark.parametrize("url", WIDGETS)
def test_htmx_widget_answers_400_not_an_error_box(sclient, url):
    for raw in BAD:
        response = sclient.get(_with(url, raw), **HX)
        assert response.status_code == 400, raw
        body = response.content.decode()
        assert _names_param_and_range(body) and 'role="alert"' in body and "<html" not in body, raw


def test_page_message_in_english(sclient):
    response = sclient.get("/quality/?as_of=9999-12-31", HTTP_ACCEPT_LANGUAGE="en")
    body = response.content.decode()
    assert response.status_code == 400 and "Invalid request" in body
    assert "&#x27;9999-12-31&#x27; is outside the accepted range 2000-01-01 .. 2100-12-31." in body


def test_page_echo_is_escaped(sclient):
    response = sclient.get(_with("/", "<script>x</script>"))
    assert response.status_code == 400 and "<script>x</script>" not in response.content.decode()


@pytest.mark.parametrize("url", ["/", "/orders/", "/orders/export.xlsx", "/quality/", "/inventory/", *WIDGETS])
def test_pages_with_a_valid_as_of_still_answer(sclient, url):
    for raw in ["2025-12-15", "2100-12-31T23:59:59"]:
        response = sclient.get(_with(url, raw), **(HX if "widget" in url or "after" in url else {}))
        assert response.status_code in ((200, 404) if url.startswith("/orders/1/") else (200,)), raw


def test_pages_without_as_of_still_answer(sclient):
    for url in ("/", "/orders/", "/quality/", "/inventory/"):
        assert sclient.get(url).status_code == 200, url


def test_an_other_bad_request_keeps_djangos_plain_400(sclient, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    page = sclient.get("/", HTTP_HOST="evil.example")
    assert page.status_code == 400 and b"Bad Request (400)" in page.content
    api = sclient.get("/api/prodplan/bottlenecks", HTTP_HOST="evil.example")
    assert api.status_code == 400 and api.json() == {"detail": "Bad request."}


# --- command -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", BAD)
def test_whatif_backtest_start_is_a_command_error(raw, db):
    with pytest.raises(CommandError, match=r"--start: .*2000-01-01 \.\. 2100-12-31"):
        call_command("whatif_backtest", start=raw)
