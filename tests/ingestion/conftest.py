"""Fixtures of the ingestion tests (the shared ones live in tests/conftest.py)."""

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import DOMAIN_TABLES

__all__ = ["DOMAIN_TABLES"]


@pytest.fixture
def steward_client(client):
    """The test client logged in as a data steward (staff), reading English admin strings."""
    from prodplan.roles import ensure_role_groups

    _, stewards = ensure_role_groups()
    user = get_user_model().objects.create_user("steward1", password="x-Very-Long-pass-1", is_staff=True)
    user.groups.add(stewards)
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # the tests read English admin strings
    return client
