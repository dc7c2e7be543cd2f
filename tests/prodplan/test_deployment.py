"""Deployment defects (#17, 8): static files with DEBUG off, probes exempt from the HTTPS redirect, no placeholder secret."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from prodplan.deploy_guard import secret_key_problem
from tests.gunicorn_server import first_answer, free_port, gunicorn

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", [None, "", "django-insecure-dev-only-set-DJANGO_SECRET_KEY-in-production",
                                   "change-me-in-production-please-a-long-random-string", "x" * 80, "short-but-random"])
def test_placeholder_or_weak_secret_keys_are_named(value):
    assert secret_key_problem(value)


def test_a_random_key_is_accepted():
    assert secret_key_problem(secrets.token_urlsafe(64)) is None


def _wsgi_import(secret: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_DEBUG": "0"}
    env.pop("DJANGO_SECRET_KEY", None)
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret
    return subprocess.run([sys.executable, "-c", "import prodplan.wsgi"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_server_refuses_to_start_with_debug_off_and_the_compose_placeholder_key():
    refused = _wsgi_import("change-me-in-production-please-a-long-random-string")
    assert refused.returncode != 0 and "refusing to start" in refused.stderr and "placeholder" in refused.stderr
    missing = _wsgi_import(None)
    assert missing.returncode != 0 and "DJANGO_SECRET_KEY is not set" in missing.stderr
    assert _wsgi_import(secrets.token_urlsafe(64)).returncode == 0


def test_check_deploy_fails_on_the_placeholder_key():
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECURE_HTTPS": "1", "DJANGO_ALLOWED_HOSTS": "prodplan.example.com",
           "DJANGO_SECRET_KEY": "change-me-in-production-please-a-long-random-string"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "prodplan.E100" in result.stderr


def test_probes_and_metrics_are_not_redirected_to_https_but_pages_are(db):
    with override_settings(SECURE_SSL_REDIRECT=True):
        client = Client()  # a new handler: SecurityMiddleware reads the setting when it is built
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/health").status_code in (200, 503)
        redirected = client.get("/api/prodplan/orders")
        assert redirected.status_code == 301 and redirected["Location"].startswith("https://")


def test_static_files_are_served_with_debug_off_without_collectstatic(client):
    response = client.get("/static/vendor/htmx.min.js")
    assert response.status_code == 200
    assert b"htmx" in b"".join(response.streaming_content)[:5000]


def test_after_collectstatic_gunicorn_serves_hashed_compressed_static_files_with_debug_off(tmp_path):
    """What the compose web does: collectstatic, then gunicorn with DEBUG=0; the page's asset URLs are hashed,
    served gzip-compressed and cached for a year."""
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
           "PRODPLAN_STATIC_ROOT": str(tmp_path / "static")}
    collected = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr[-2000:]
    port = free_port()
    with gunicorn(env, args=["-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning"]) as process:
        status, _, html = first_answer(port, "/accounts/login/", process)
        assert status == 200
        asset = re.search(r'src="(/static/vendor/htmx\.min\.[0-9a-f]{12}\.js)"', html.decode())
        assert asset, "the page does not reference a hashed htmx.min.js"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", asset.group(1), headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("Content-Encoding") == "gzip"
        assert "max-age=315360000" in (response.getheader("Cache-Control") or "")
