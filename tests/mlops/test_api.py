"""API: train (202, API key), registry, predict (order or payload), explain; nightly task stores predictions."""

from __future__ import annotations

import pytest

from mlops.datasets import data_as_of, eta_open_features, lead_time_dataset, order_features, order_ids_open_at
from mlops.models import ModelVersion, Prediction
from orders.models import ManufacturingOrder
from tests.mlops.conftest import FAST


@pytest.mark.django_db
def test_train_needs_an_api_key_and_answers_202(factory, keyed_client, monkeypatch):
    from rest_framework.test import APIClient

    from mlops import services

    anonymous = APIClient()
    assert anonymous.post("/api/ml/train/leadtime", {}, format="json").status_code in (401, 403)
    monkeypatch.setattr(services, "DEFAULT_MLP_PARAMS", {**services.DEFAULT_MLP_PARAMS, **FAST["mlp"]})
    monkeypatch.setattr(services, "DEFAULT_HGB_PARAMS", {**services.DEFAULT_HGB_PARAMS, **FAST["hgb"]})
    response = keyed_client.post("/api/ml/train/risk", {"seed": 3}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["task_id"] and body["name"] == "risk" and body["result"]["status"] == "trained"
    versions = ModelVersion.objects.filter(name="risk")
    assert versions.count() == 3 and {v.seed for v in versions} == {3}
    assert anonymous.get("/api/ml/models", {"name": "risk"}).status_code == 401  # the registry is factory data
    listing = keyed_client.get("/api/ml/models", {"name": "risk"}).json()
    assert [m["label"] for m in listing["results"]] == [v.label for v in versions.order_by("-id")]
    assert all(m["metrics"]["test"]["n"] == body["result"]["rows"]["test"] for m in listing["results"])


@pytest.mark.django_db
def test_train_with_the_broker_down_is_a_503_naming_it(keyed_client, broker_down):
    response = keyed_client.post("/api/ml/train/leadtime", {}, format="json")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["component"] == "task queue" and "task queue unavailable" in response.json()["detail"]
    assert ModelVersion.objects.count() == 0


@pytest.mark.django_db
def test_predict_and_explain(trained, api_client, pinned_queries):
    active = ModelVersion.objects.get(name="leadtime", active=True)
    order_id = int(lead_time_dataset().splits["test"]["order_id"].iloc[-1])
    with pinned_queries("mlops.test_api.test_predict_and_explain"):
        body = api_client.post("/api/ml/predict/leadtime", {"order_id": order_id}, format="json").json()
    assert body["model"]["label"] == active.label and body["model"]["version"] == active.version
    low, high = body["interval_80"]["lower"], body["interval_80"]["upper"]
    q = active.residual_quantiles
    assert low == pytest.approx(max(0, body["lead_time_days"] + q["q10"]), abs=1e-3)
    assert high == pytest.approx(body["lead_time_days"] + q["q90"], abs=1e-3)
    payload = {k: v for k, v in body["features"].items() if v is not None}
    by_features = api_client.post("/api/ml/predict/leadtime", {"features": payload}, format="json").json()
    assert by_features["lead_time_days"] == pytest.approx(body["lead_time_days"], abs=1e-6)
    risk = api_client.post("/api/ml/predict/risk", {"order_id": order_id}, format="json").json()
    risk_active = ModelVersion.objects.filter(name="risk", active=True).first()  # promoted only on evidence
    assert 0 <= risk["probability"] <= 1 and risk["model"]["label"] == (risk_active.label if risk_active else "baseline")
    assert api_client.post("/api/ml/predict/risk", {}, format="json").status_code == 400
    assert api_client.post("/api/ml/predict/risk", {"order_id": 10**9}, format="json").status_code == 404

    glob = api_client.get("/api/ml/explain/leadtime").json()
    assert glob["global_importance"] == active.importance and glob["model"]["label"] == active.label
    local = api_client.get("/api/ml/explain/leadtime", {"of_id": order_id}).json()
    total = sum(c["contribution"] for c in local["contributions"])
    assert total == pytest.approx(local["prediction"] - local["reference_prediction"], abs=1e-3)
    assert local["prediction"] == pytest.approx(body["lead_time_days"], abs=1e-3)
    assert "Shapley" in local["method"]
    assert api_client.get("/api/ml/explain/risk", {"of_id": "x"}).status_code == 400


@pytest.mark.django_db
def test_nightly_task_stores_predictions_for_open_orders_and_is_idempotent(factory, monkeypatch):
    from mlops import services
    from mlops.tasks import train_all_models_task

    monkeypatch.setattr(services, "DEFAULT_MLP_PARAMS", {**services.DEFAULT_MLP_PARAMS, **FAST["mlp"]})
    monkeypatch.setattr(services, "DEFAULT_HGB_PARAMS", {**services.DEFAULT_HGB_PARAMS, **FAST["hgb"]})
    first = train_all_models_task.delay().get()
    assert first["leadtime"]["status"] == "trained" and first["risk"]["status"] == "trained"
    as_of = data_as_of()
    open_ids = set(order_ids_open_at(as_of=as_of))  # the order state: open at as_of, not abandoned
    assert open_ids == {o.id for o in ManufacturingOrder.objects.all()
                        if o.created_at <= as_of and (o.finished_at is None or o.finished_at > as_of)}
    assert set(order_features(which="open")["order_id"]) == open_ids  # by default at the data's as-of
    eta_ids = set(eta_open_features(as_of=as_of)["order_id"])  # active ones: stalled orders get no ETA
    assert eta_ids and eta_ids <= open_ids
    stored = Prediction.objects.filter(name="leadtime")
    assert set(stored.values_list("order_id", flat=True)) == open_ids
    assert Prediction.objects.filter(name="risk").count() == len(open_ids)
    from mlops.selectors import active_predictor

    # the factory's lead time follows its load, which the load-aware baseline knows: a candidate is promoted only
    # on evidence, else the baseline answers
    assert {p.model_label for p in stored} == {active_predictor("leadtime").label}
    assert all(p.lower <= p.value <= p.upper for p in stored)
    versions = ModelVersion.objects.count()
    second = train_all_models_task.delay().get()
    assert second["leadtime"]["status"] == "skipped" and ModelVersion.objects.count() == versions
    assert second["eta"]["status"] == "skipped"
    assert set(Prediction.objects.filter(name="eta").values_list("order_id", flat=True)) == eta_ids
    assert Prediction.objects.count() == 2 * len(open_ids) + len(eta_ids)  # lead time, risk and ETA


def test_training_follows_the_role_not_is_staff(db, broker_down):
    """A data steward is staff (the admin's triage) but does not retrain models; a supervisor may. The broker is
    down here, so an allowed request answers 503 without training anything."""
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    from prodplan.roles import DATA_STEWARDS, SUPERVISORS, ensure_role_groups

    ensure_role_groups()
    steward = User.objects.create_user("steward-train", password="pw-steward-123", is_staff=True)
    steward.groups.add(Group.objects.get(name=DATA_STEWARDS))
    supervisor = User.objects.create_user("supervisor-train", password="pw-supervisor-123")
    supervisor.groups.add(Group.objects.get(name=SUPERVISORS))
    as_steward, as_supervisor = APIClient(), APIClient()
    as_steward.force_login(steward)
    as_supervisor.force_login(supervisor)
    assert as_steward.post("/api/ml/train/leadtime", {}, format="json").status_code == 403
    assert as_supervisor.post("/api/ml/train/leadtime", {}, format="json").status_code == 503


def test_registry_predictions_and_explanations_match_the_schema(trained, api_client, keyed_client):
    """The mlops answers on a trained registry, checked strictly against the generated schema (tests/openapi_check)."""
    from mlops.models import ModelVersion
    from orders.models import ManufacturingOrder
    from tests.openapi_check import generated_schema, response_errors

    spec = generated_schema()
    order_id = ManufacturingOrder.objects.order_by("id").values_list("id", flat=True).first()
    answers = [("get", "/api/ml/models?page_size=200", api_client.get("/api/ml/models", {"page_size": 200}))]
    for target in ("leadtime", "risk"):
        answers.append(("post", f"/api/ml/predict/{target}",
                        api_client.post(f"/api/ml/predict/{target}", {"order_id": order_id}, format="json")))
        answers.append(("post", f"/api/ml/predict/{target}", api_client.post(
            f"/api/ml/predict/{target}", {"features": {"family": "K1", "product_id": 1}}, format="json")))
        answers.append(("get", f"/api/ml/explain/{target}", api_client.get(f"/api/ml/explain/{target}")))
        answers.append(("get", f"/api/ml/explain/{target}",
                        api_client.get(f"/api/ml/explain/{target}", {"of_id": order_id})))
    problems = []
    for method, path, response in answers:
        assert response.status_code == 200, (path, response.content[:300])
        problems += response_errors(spec, path, 200, response.json(), method=method)
    registry = answers[0][2].json()["results"]
    assert {v["algorithm"] for v in registry} >= {"baseline", "hgb"} and len(registry) == ModelVersion.objects.count()
    assert any(v["promotion_evidence"] for v in registry) and all(v["metrics"] for v in registry)
    assert not problems, "\n".join(problems)
