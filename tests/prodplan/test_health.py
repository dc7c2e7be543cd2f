"""/api/health, /metrics, the admin login page, the favicon and API-key authentication."""

import pytest
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from prodplan.api_keys import HasApiKeyOrStaff
from prodplan.models import ApiKey, hash_api_key

pytestmark = pytest.mark.django_db


def test_health_ok(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["ok"] is True
    assert response["X-Request-Id"]


def test_metrics_exposed(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_admin_login_page(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200


def test_favicon_served_for_every_page(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/img/favicon.svg")
    assert finders.find("img/favicon.svg")
    assert b'rel="icon"' in client.get("/accounts/login/").content


class _Protected(APIView):
    permission_classes = [HasApiKeyOrStaff]

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [path("protected", _Protected.as_view())]


@pytest.mark.urls("tests.prodplan.test_health")
def test_api_key_required_and_stored_hashed(anonymous_api_client):
    api_client = anonymous_api_client
    key, raw = ApiKey.generate(name="react frontend")
    assert key.key_hash == hash_api_key(raw) and raw not in key.key_hash
    assert api_client.post("/protected").status_code in (401, 403)
    api_client.credentials(HTTP_X_API_KEY="wrong")
    assert api_client.post("/protected").status_code in (401, 403)
    api_client.credentials(HTTP_X_API_KEY=raw)
    assert api_client.post("/protected").status_code == 200
    key.revoked_at = key.created_at
    key.save()
    assert api_client.post("/protected").status_code in (401, 403)
