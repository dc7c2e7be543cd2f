"""Models page: the registry table and the active model's feature importance, or an honest empty state."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sclient(client, db):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-123"))
    return client


def test_models_page_empty_registry(sclient, ingested, pinned_queries):
    with pinned_queries("mlops.test_views.test_models_page_empty_registry"):
        html = sclient.get("/models/").content.decode()
    assert html.count("<h1") == 1 and 'id="registry"' not in html and "not-supported" in html


def test_models_page_lists_the_registry(sclient, ingested, pinned_queries):
    from mlops.models import ModelVersion

    ModelVersion.objects.create(name="leadtime", version=1, algorithm="baseline", data_version=1,
                                metrics={"validation": {"mae": 3.5}})
    ModelVersion.objects.create(name="leadtime", version=2, algorithm="hgb", data_version=1, active=True,
                                metrics={"validation": {"mae": 2.5}, "baseline_validation": {"mae": 3.5}},
                                importance=[{"feature": "family", "importance": 0.4}, {"feature": "wip", "importance": 0.1}])
    with pinned_queries("mlops.test_views.test_models_page_lists_the_registry"):
        html = sclient.get("/models/").content.decode()
    assert html.count('<tr>\n      <td>Prazo de fabrico v') == 2  # the target in words, not its code
    # metrics as a small table: words, a unit, pt-PT decimals (no "mae=2.5" dict dump)
    assert "erro absoluto médio" in html and "2,50 dias" in html and "3,50 dias" in html and "mae=" not in html
    # feature names in words on the importance chart ("family" is the product family)
    assert 'id="chart-importance-leadtime"' in html and "fam\\u00edlia do produto" in html and '"family"' not in html


def test_models_page_shows_why_a_classifier_was_refused(sclient, ingested, pinned_queries):
    """Evidence in words and pt-PT numbers: the margin with its 95% interval, the test check, Brier against the base
    rate, the failed checks; no dict dumps."""
    from mlops.models import ModelVersion

    ModelVersion.objects.create(name="risk", version=1, algorithm="baseline", data_version=1,
                                promotion_evidence={"verdict": "baseline", "role": "fallback",
                                                    "baseline_kind": "product_rate"})
    comparison = {"reference": "risk:v1:baseline", "reference_kind": "baseline", "reference_id": 1,
                  "reference_detail": "product_rate",
                  "validation": {"candidate": 0.7011, "reference": 0.724, "margin": -0.0229, "low": -0.1262,
                                 "high": 0.0815, "excludes_zero": False, "n": 200, "resamples": 1000, "seed": 0},
                  "test": {"candidate": 0.5832, "reference": 0.6648, "margin": -0.0816, "not_worse": False,
                           "tolerance": 0.0}}
    ModelVersion.objects.create(
        name="risk", version=2, algorithm="hgb", data_version=1, promotion_reason="not promoted: noise",
        promotion_evidence={
            "verdict": "refused", "passed": False, "metric": "roc_auc", "comparisons": [comparison],
            "brier": {"base_rate": 0.8195, "validation": {"candidate": 0.1389, "base_rate": 0.1316, "ok": False},
                      "test": {"candidate": 0.1535, "base_rate": 0.1188, "ok": False}},
            "checks": [{"code": "validation_margin", "reference": "risk:v1:baseline", "ok": False},
                       {"code": "test_not_worse", "reference": "risk:v1:baseline", "ok": False},
                       {"code": "brier_validation", "ok": False}, {"code": "brier_test", "ok": False}],
            "active_version": None})
    with pinned_queries("mlops.test_views.test_models_page_shows_why_a_classifier_was_refused"):
        html = sclient.get("/models/").content.decode()
    assert 'data-verdict="refused"' in html and 'data-verdict="baseline"' in html
    assert '<span class="margin">-0,023</span>' in html
    assert '<span class="interval">[-0,126; 0,082]</span>' in html
    assert "0,583" in html and "0,665" in html and "0,139" in html and "0,132" in html and "0,820" in html
    assert html.count('class="small why-not"') == 1 and html.count("Risco de defeito v1 (Referência)") >= 3  # the version in words
    assert "not promoted: noise" not in html  # the stored English sentence is for the API, the page says it in words
    assert "{&#x27;" not in html and "[{" not in html


def test_train_now_queues_a_job_whose_status_partial_reports_it(factory, supervisor_client, monkeypatch):
    """A supervisor's "train now" records a job, queues the training task (eager here: it runs in the request),
    and the job's status partial reports how it ended; polling a finished job answers 286."""
    from mlops import services
    from mlops.models import ModelVersion, TrainingJob
    from tests.mlops.conftest import FAST

    monkeypatch.setattr(services, "DEFAULT_MLP_PARAMS", {**services.DEFAULT_MLP_PARAMS, **FAST["mlp"]})
    monkeypatch.setattr(services, "DEFAULT_HGB_PARAMS", {**services.DEFAULT_HGB_PARAMS, **FAST["hgb"]})
    page = supervisor_client.get("/models/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'action="/models/train/"' in page and 'id="train-risk"' in page
    response = supervisor_client.post("/models/train/", {"name": "risk"}, HTTP_ACCEPT_LANGUAGE="en", **HX)
    assert response.status_code == 200
    job = TrainingJob.objects.get()
    assert job.name == "risk" and job.status == "succeeded" and job.requested_by is not None
    assert set(job.result["versions"]) | set(job.result["baselines"]) == set(
        ModelVersion.objects.filter(name="risk").values_list("pk", flat=True))
    assert f'id="training-{job.pk}"' in response.content.decode()
    status = supervisor_client.get(f"/models/train/{job.pk}/?poll=1", HTTP_ACCEPT_LANGUAGE="en", **HX)
    html = status.content.decode()
    assert status.status_code == 286 and 'data-status="succeeded"' in html and "trained" in html
    assert "hx-trigger" not in html  # done: no more polling
    # the models page shows the card's latest job
    assert f'id="training-{job.pk}"' in supervisor_client.get("/models/").content.decode()


def test_train_now_without_enough_data_says_so(supervisor_client, db):
    from mlops.models import TrainingJob

    response = supervisor_client.post("/models/train/", {"name": "leadtime"}, HTTP_ACCEPT_LANGUAGE="en", **HX)
    job = TrainingJob.objects.get()
    assert response.status_code == 200 and job.status == "not_supported" and "rows" in job.error
    assert 'data-status="not_supported"' in response.content.decode()


def test_a_queued_job_polls_until_it_is_done(supervisor_client, broker_down):
    """With the broker down the job cannot be queued: it is failed with the reason, shown in words."""
    from mlops.models import TrainingJob

    response = supervisor_client.post("/models/train/", {"name": "leadtime"}, HTTP_ACCEPT_LANGUAGE="en", **HX)
    job = TrainingJob.objects.get()
    assert job.status == "failed" and "task queue unavailable" in job.error
    html = response.content.decode()
    assert 'data-status="failed"' in html and "task queue unavailable" in html and "hx-trigger" not in html
    TrainingJob.objects.filter(pk=job.pk).update(status="queued", error="", finished_at=None)
    polling = supervisor_client.get(f"/models/train/{job.pk}/?poll=1", **HX)
    assert polling.status_code == 200 and 'hx-trigger="every 2s"' in polling.content.decode()


def test_train_now_needs_the_supervisor_role(sclient, client, db):
    from django.contrib.auth.models import Group

    from mlops.models import TrainingJob
    from prodplan.roles import DATA_STEWARDS, ensure_role_groups

    assert sclient.post("/models/train/", {"name": "risk"}, **HX).status_code == 403
    assert 'action="/models/train/"' not in sclient.get("/models/").content.decode()
    ensure_role_groups()
    steward = User.objects.create_user("steward-t", password="pw-steward-123", is_staff=True)
    steward.groups.add(Group.objects.get(name=DATA_STEWARDS))
    client.force_login(steward)
    assert client.post("/models/train/", {"name": "risk"}, **HX).status_code == 403
    assert not TrainingJob.objects.exists()
