"""The post-ingestion cache warm-up: the API's first request after it is a cache hit."""

from __future__ import annotations

import pytest

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun
from inventory.services import inventory_cache_warm
from quality.services import quality_cache_warm
from tests.quality.builders import AS_OF, build_factory

pytestmark = pytest.mark.django_db


def test_warm_cache_makes_first_requests_hits(api_client, pinned_queries):
    build_factory()
    IngestionRun.objects.create(file_name="x.xlsx", status=RunStatus.SUCCEEDED, as_of=AS_OF)
    assert quality_cache_warm() and inventory_cache_warm()
    paths = ["/api/quality/overview", "/api/quality/by-phase", "/api/quality/by-product", "/api/quality/heatmap",
             "/api/quality/escapes", "/api/smartinventory/wip", "/api/smartinventory/wip_mass",
             "/api/smartinventory/gelcoat_theoretical_usage?period=week"]
    for path in paths:
        # only the as-of lookup (last successful run) reaches the database: the payload comes from the cache
        with pinned_queries("quality.test_services.test_warm_cache_makes_first_requests_hits"):
            response = api_client.get(path)
        assert response.status_code == 200
        assert response.json()["as_of"] == AS_OF.isoformat()


def test_warm_cache_without_data_is_a_no_op(db):
    IngestionRun.objects.all().delete()  # the session's `ingested` run, if any (rolled back after the test)
    assert quality_cache_warm() == [] and inventory_cache_warm() == []
