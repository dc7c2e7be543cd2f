"""Shared fixtures: real PostgreSQL (DATABASE_URL), a clean cache per test, API keys."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clean_cache():
    """Cache entries are keyed by data version, which test transactions roll back: start each test empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_key(db) -> str:
    from prodplan.models import ApiKey

    _, raw = ApiKey.generate(name="test client")
    return raw


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def keyed_client(api_client, api_key):
    api_client.credentials(HTTP_X_API_KEY=api_key)
    return api_client
