"""Every GET endpoint of the OpenAPI schema, anonymous and with an API key: no employee name in any body."""

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


def _get_paths(api_client, values) -> tuple[list[str], list[str]]:
    schema = api_client.get("/api/schema/?format=json")
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


def test_no_get_endpoint_shows_an_employee_name(ingested, db, api_client, keyed_client):
    names = _names()
    values = _path_values(ingested, keyed_client)
    urls, skipped = _get_paths(api_client, values)
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
