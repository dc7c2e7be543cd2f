"""The API is typed: every response has a schema, real responses match it, and docs/openapi.yaml is the generated one."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from tests.openapi_check import generated_schema, response_errors, untyped

COMMITTED = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"
REGENERATE = ".venv/bin/python manage.py spectacular --lang en --file docs/openapi.yaml --validate"

# Stored JSON documents whose inner shape is free by design (the API hands them over as stored): the what-if
# simulation's model inputs and a model version's interval calibration (its shape is mlops.intervals' own).
# Everything around them is typed; this list names every place the schema leaves open.
FREE_DOCUMENTS = {
    "WhatIfOutputs/model",
    "ModelVersion/residual_quantiles",
}


def _generated_yaml() -> str:
    from drf_spectacular.renderers import OpenApiYamlRenderer

    with translation.override("en"):
        return OpenApiYamlRenderer().render(generated_schema(), renderer_context={}).decode()


def test_committed_schema_is_the_generated_one():
    generated = _generated_yaml()
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    if committed != generated:
        diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), generated.splitlines(keepends=True),
                                            "docs/openapi.yaml (committed)", "generated", n=2))
        shown = diff if len(diff) < 6000 else diff[:6000] + "\n... (diff cut)\n"
        pytest.fail(f"docs/openapi.yaml is not the schema this code generates: the API's shape changed.\n"
                    f"Regenerate it with `{REGENERATE}` and commit it with the change.\n\n{shown}", pytrace=False)


def _reachable_components(spec: dict, node, seen: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                _reachable_components(spec, spec["components"]["schemas"][name], seen)
        for value in node.values():
            _reachable_components(spec, value, seen)
    elif isinstance(node, list):
        for value in node:
            _reachable_components(spec, value, seen)


def test_every_response_is_typed():
    spec = generated_schema()
    seen: set[str] = set()
    problems = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is None:
                    if not status.startswith("2"):
                        continue
                    problems.append(f"{method.upper()} {path} {status}: no JSON schema")
                    continue
                problems += [f"{method.upper()} {path} {status}: untyped at {where}" for where in untyped(schema)]
                _reachable_components(spec, schema, seen)
    for name in sorted(seen):
        problems += [f"component {name}: untyped at {name}{where}" for where in untyped(spec["components"]["schemas"][name])
                     if f"{name}{where}" not in FREE_DOCUMENTS]
    assert not problems, "\n".join(problems)
    assert "OBJECT" not in str(spec)


@pytest.fixture
def reads(ingested, db, api_client):
    """The session's ingested workbook, a reader, and ids that exist in it."""
    from ingestion.models import IngestionRun
    from orders.models import ManufacturingOrder, Product
    from orders.selectors import open_orders_at
    from prodplan.asof import data_as_of

    open_ids = sorted(r["order_id"] for r in open_orders_at(as_of=data_as_of()))
    return {
        "client": api_client,
        "order": ManufacturingOrder.objects.order_by("id").values_list("id", flat=True).first(),
        "open_order": open_ids[0],
        "product": Product.objects.order_by("id").values_list("id", flat=True).first(),
        "run": IngestionRun.objects.order_by("-id").values_list("id", flat=True).first(),
    }


GET_PATHS = [
    "/api/prodplan/orders?page_size=3", "/api/prodplan/orders?status=DONE&page_size=2",
    "/api/prodplan/orders/states", "/api/prodplan/orders/stalled",
    "/api/prodplan/orders/{order}", "/api/prodplan/orders/{order}/phases",
    "/api/prodplan/orders/{open_order}", "/api/prodplan/orders/{open_order}/phases",
    "/api/prodplan/routes/{product}", "/api/prodplan/routes/999999",
    "/api/prodplan/schedule/current", "/api/prodplan/bottlenecks", "/api/prodplan/risk_queue?limit=5",
    "/api/kpis/overview", "/api/kpis/by-phase", "/api/kpis/by-product", "/api/kpis/by-employee",
    "/api/kpis/overview?date_from=2025-01-01&date_to=2025-03-31",
    "/api/quality/overview?top=3", "/api/quality/by-phase", "/api/quality/by-product", "/api/quality/heatmap",
    "/api/quality/escapes", "/api/quality/risk", "/api/quality/risk?family=K1&severity=2",
    "/api/quality/risk?phase=1", "/api/quality/risk?phase=1&product={product}&min_sample=1",
    "/api/smartinventory/wip", "/api/smartinventory/wip_mass", "/api/smartinventory/gelcoat_theoretical_usage",
    "/api/smartinventory/gelcoat_theoretical_usage?period=week", "/api/smartinventory/real_stock",
    "/api/smartinventory/material_consumption", "/api/smartinventory/stock_valuation", "/api/smartinventory/replenishment",
    "/api/ml/models", "/api/ml/explain/leadtime", "/api/ml/explain/risk?of_id={order}",
    "/api/ml/explain/eta?of_id={open_order}", "/api/whatif/runs",
    "/api/ingestion/status/{run}", "/api/ingestion/report/{run}",
]


def test_real_responses_match_the_schema(reads):
    """Every GET endpoint on the session's workbook: status 200 and a body the schema describes exactly (every key
    named, required keys present, types and nulls as declared): a shape drift fails here."""
    spec = generated_schema()
    covered = set()
    problems = []
    for template in GET_PATHS:
        path = template.format(**reads)
        response = reads["client"].get(path)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        problems += response_errors(spec, path, 200, response.json())
        covered.add(spec_path(spec, path))
    assert not problems, "\n".join(problems)
    gets = {p for p, ops in spec["paths"].items() if "get" in ops and not p.startswith("/api/schema")
            and "/whatif/result/" not in p}
    assert gets - covered == set()


def spec_path(spec: dict, path: str) -> str:
    from tests.openapi_check import path_template

    return path_template(spec, path.split("?")[0])


def test_whatif_run_and_prediction_match_the_schema(reads, api_key):
    """The write endpoints' answers and a stored run, read back: the what-if run and a prediction of each target."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    spec = generated_schema()
    problems = []
    run = client.post("/api/whatif/simulate", {"horizon_days": 14, "arrivals": False}, format="json")
    assert run.status_code in (200, 201), run.content[:300]
    problems += response_errors(spec, "/api/whatif/simulate", run.status_code, run.json(), method="post")
    stored = client.get(f"/api/whatif/result/{run.json()['id']}")
    problems += response_errors(spec, f"/api/whatif/result/{run.json()['id']}", 200, stored.json())
    listed = client.get("/api/whatif/runs")
    assert listed.json()["results"]
    problems += response_errors(spec, "/api/whatif/runs", 200, listed.json())
    for target, body in (("leadtime", {"order_id": reads["order"]}), ("risk", {"features": {"family": "K1"}}),
                         ("eta", {"order_id": reads["open_order"]})):
        answer = client.post(f"/api/ml/predict/{target}", body, format="json")
        assert answer.status_code == 200, (target, answer.content[:300])
        problems += response_errors(spec, f"/api/ml/predict/{target}", 200, answer.json(), method="post")
    assert not problems, "\n".join(problems)


def test_a_drift_is_caught():
    """The check itself: a key the schema does not name, a missing required key, a wrong type all fail."""
    spec = generated_schema()
    body = {"value": 1.0, "basis": "observed", "coverage": None}
    path = "/api/kpis/overview"
    good = {"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z", "wip_at": "2025-02-01T00:00:00Z",
            "finished_orders": 3, "throughput_per_week": body,
            "lead_time_days": {**body, "value": {"p50": 1.0, "p90": 2.0, "mean": None}, "n": 3},
            "wip": {**body, "value": {"count": 1, "age_days_p50": 1.0, "age_days_p90": 1.0, "age_days_mean": 1.0},
                    "stalled_orders_excluded": 0, "note": "n"},
            "on_time_rate": {**body, "note": "n"}, "rework_rate": {**body, "note": "n"}}
    assert response_errors(spec, path, 200, good) == []
    assert response_errors(spec, path, 200, {**good, "surprise": 1})
    assert response_errors(spec, path, 200, {k: v for k, v in good.items() if k != "wip"})
    assert response_errors(spec, path, 200, {**good, "finished_orders": "3"})
    assert response_errors(spec, path, 200, {**good, "throughput_per_week": {**body, "basis": "guessed"}})
