"""Error pages: JSON 404/500 under /api/ for the frontend, the site's own pages for people."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("api/boom", _boom), path("boom", _boom)]
handler500 = "prodplan.api_errors.server_error"


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/no-such-endpoint")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Not found: no API endpoint at /api/no-such-endpoint (see /api/docs/)."


def test_unknown_page_is_the_sites_404_with_its_navigation(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-viewer-123"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.get("/no-such-page/")
    body = response.content.decode()
    assert response.status_code == 404 and "Page not found" in body and "There is no page at /no-such-page/." in body
    assert 'href="/orders/"' in body  # the navigation is there to go on from
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "pt-pt"
    assert "Página não encontrada" in client.get("/no-such-page/").content.decode()


@pytest.mark.urls("tests.prodplan.test_errors")
def test_server_error_is_json_for_the_api_and_a_static_page_for_people():
    client = Client(raise_request_exception=False)
    api = client.get("/api/boom")
    assert api.status_code == 500 and "X-Request-Id" in api.json()["detail"] and api["X-Request-Id"]
    page = client.get("/boom")
    assert page.status_code == 500 and b"PRODPLAN could not answer" in page.content
