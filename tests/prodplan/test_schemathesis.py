"""Schemathesis against the OpenAPI schema, in-process: no 500s, and responses match the schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from django.core.wsgi import get_wsgi_application  # noqa: E402
from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance  # noqa: E402

application = get_wsgi_application()  # not prodplan.wsgi: that entry point refuses the test run's placeholder key

# The served schema needs a login or a key (factory data is not public): the same document, generated in-process.
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True)).include(method="GET")
schema.app = application


@pytest.fixture
def loaded(ingested, db):
    """Keep the test transaction's connection open across WSGI requests, as Django's test client does."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from prodplan.models import ApiKey

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    _, raw_key = ApiKey.generate(name="schemathesis")
    yield raw_key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_get_endpoints_conform(case, loaded):
    # What the issue asks: never a 500, and every documented response matches its schema. Status codes a
    # fuzzer provokes with nonsense ids (404) or bad filters (400) are DRF's standard answers.
    case.call_and_validate(headers={"X-API-Key": loaded}, checks=[not_a_server_error, response_schema_conformance, content_type_conformance])
