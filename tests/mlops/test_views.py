"""Models page: the registry table and the active model's feature importance, or an honest empty state."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sclient(client, db):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-123"))
    return client


def test_models_page_empty_registry(sclient, ingested, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        html = sclient.get("/models/").content.decode()
    assert html.count("<h1") == 1 and 'id="registry"' not in html and "not-supported" in html


def test_models_page_lists_the_registry(sclient, ingested, django_assert_max_num_queries):
    from mlops.models import ModelVersion

    ModelVersion.objects.create(name="leadtime", version=1, algorithm="baseline", data_version=1,
                                metrics={"validation": {"mae": 3.5}})
    ModelVersion.objects.create(name="leadtime", version=2, algorithm="hgb", data_version=1, active=True,
                                metrics={"validation": {"mae": 2.5}, "baseline_validation": {"mae": 3.5}},
                                importance=[{"feature": "family", "importance": 0.4}, {"feature": "wip", "importance": 0.1}])
    with django_assert_max_num_queries(4):
        html = sclient.get("/models/").content.decode()
    assert html.count('<tr>\n      <td>leadtime v') == 2
    assert "mae=2,5" in html and "mae=3,5" in html  # pt-PT decimals
    assert 'id="chart-importance-leadtime"' in html and '"family"' in html
