"""Every GET endpoint of the OpenAPI schema: closed to anonymous users by default; anonymous (reads opened) and with
an API key, no employee name in any body."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.django_db

_PARAM = re.compile(r"\{(\w+)\}")


def _names() -> list[str]:
    from orders.models import Employee

    names = sorted({n.strip() for n in Employee.objects.values_list("name", flat=True) if n and n.strip()})
    assert names, "the ingested fixture has employees"
    return names


def _whatif_id(keyed_client, as_of) -> int | None:
    """A stored what-if run on the ingested data (the fixture makes none); None when one cannot be made."""
    from whatif.models import WhatIfRun

    existing = WhatIfRun.objects.order_by("-id").values_list("pk", flat=True).first()
    if existing:
        return existing
    body = {"as_of": as_of.date().isoformat() if hasattr(as_of, "date") else str(as_of), "horizon_days": 7, "seed": 1}
    response = keyed_client.post("/api/whatif/simulate", body, format="json")
    return response.json().get("id") if response.status_code in (200, 201) else None


def _path_values(ingested, keyed_client) -> dict[str, object]:
    """Real ids from the ingested fixture for every path (and required query) parameter the API declares."""
    from orders.models import ManufacturingOrder, OrderPhase, Phase, PhaseAssignment, Product, RouteStep

    # An order with employees on its phases: the one whose pages would show a name if any did.
    staffed = OrderPhase.objects.filter(id__in=PhaseAssignment.objects.values("order_phase_id"))
    of_id = staffed.values_list("order_id", flat=True).first() or ManufacturingOrder.objects.values_list(
        "pk", flat=True).first()
    produto_id = RouteStep.objects.values_list("product_id", flat=True).first() or Product.objects.values_list(
        "pk", flat=True).first()
    values = {
        "run_id": ingested["run_id"],
        "of_id": of_id,
        "produto_id": produto_id,
        "phase": Phase.objects.values_list("pk", flat=True).first(),
        "whatif_id": _whatif_id(keyed_client, ingested["as_of"]),
    }
    return {name: value for name, value in values.items() if value is not None}


def _get_paths(keyed_client, values) -> tuple[list[str], list[str]]:
    schema = keyed_client.get("/api/schema/?format=json")
    assert schema.status_code == 200, schema.content[:200]
    urls, skipped = [], []
    for path, operations in json.loads(schema.content)["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        needed = [p["name"] for p in get.get("parameters", []) if p["in"] == "path" or p.get("required")]
        missing = [name for name in needed if name not in values]
        if missing:
            skipped.append(f"{path} (no value for {', '.join(missing)})")
            continue
        url = _PARAM.sub(lambda m: str(values[m.group(1)]), path)
        query = [f"{p['name']}={values[p['name']]}" for p in get.get("parameters", [])
                 if p["in"] == "query" and p.get("required")]
        urls.append(url + ("?" + "&".join(query) if query else ""))
    return urls, skipped


def test_no_get_endpoint_shows_an_employee_name(ingested, db, anonymous_api_client, keyed_client, settings):
    settings.PUBLIC_READS = True  # the anonymous half of the scan needs reads opened (a closed-network setting)
    api_client = anonymous_api_client
    names = _names()
    values = _path_values(ingested, keyed_client)
    urls, skipped = _get_paths(keyed_client, values)
    assert len(urls) >= 30, (urls, skipped)  # the whole API, not a handful
    assert not skipped, f"GET paths not scanned: {skipped}"
    leaks, answered = [], {}
    for label, client in (("anonymous", api_client), ("api key", keyed_client)):
        for url in urls:
            response = client.get(url)
            answered[(label, url)] = response.status_code
            assert response.status_code < 500, (label, url, response.status_code)
            body = response.content.decode()
            if response.get("Content-Type", "").startswith("application/json") and body:
                body += json.dumps(json.loads(body), ensure_ascii=False)  # names written as \u escapes too
            leaks += [(label, url, name) for name in names if name in body]
    assert leaks == []
    # The scan reached real data: every path answered the keyed client, not only 404s.
    assert all(answered[("api key", url)] == 200 for url in urls), {k: v for k, v in answered.items() if v != 200}


def test_factory_data_needs_a_login_or_a_key_by_default(ingested, db, anonymous_api_client, keyed_client,
                                                         supervisor_client):
    values = _path_values(ingested, keyed_client)
    urls, _ = _get_paths(keyed_client, values)
    answered = {url: anonymous_api_client.get(url).status_code for url in urls}
    open_to_anyone = {url: code for url, code in answered.items() if code not in (401, 403)}
    assert set(open_to_anyone) <= {"/api/health"}, open_to_anyone
    assert anonymous_api_client.get("/api/schema/").status_code in (401, 403)
    # the same reads answer a logged-in user and a key
    for url in ("/api/prodplan/orders", "/api/kpis/overview", "/api/quality/overview"):
        assert supervisor_client.get(url).status_code == 200, url
        assert keyed_client.get(url).status_code == 200, url


def test_a_revoked_or_unknown_key_gets_no_cached_answer(ingested, db, keyed_client, api_key):
    from django.utils import timezone
    from rest_framework.test import APIClient

    from prodplan import response_cache
    from prodplan.models import ApiKey, hash_api_key

    first = keyed_client.get("/api/kpis/overview")
    assert first.status_code == 200
    assert keyed_client.get("/api/kpis/overview")["X-Cache"] == "hit"
    stranger = APIClient()
    stranger.credentials(HTTP_X_API_KEY="pp_not-a-key")
    refused = stranger.get("/api/kpis/overview")
    assert refused.status_code == 401 and "X-Cache" not in refused
    ApiKey.objects.filter(key_hash=hash_api_key(api_key)).update(revoked_at=timezone.now())
    response_cache._valid_keys.clear()  # what KEY_MEMO_SECONDS does by itself, without waiting 10 s
    assert keyed_client.get("/api/kpis/overview").status_code == 401


def test_api_docs_need_a_login_and_load_no_cdn(supervisor_client):
    from django.test import Client

    anonymous = Client().get("/api/docs/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    page = supervisor_client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn.jsdelivr.net" not in html and "fonts.googleapis" not in html and "@latest" not in html
    assert "/static/drf_spectacular_sidecar/" in html


def test_metrics_answer_the_allowed_network_or_a_bearer_token(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = "metrics-token-for-the-test-0123456789"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5",
                      HTTP_AUTHORIZATION="Bearer metrics-token-for-the-test-0123456789").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
