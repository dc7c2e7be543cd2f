"""Tracing (#17, operations): off by default; on, a request's view and SQL spans share its trace, and an ingestion
task's span is in the trace of the request that queued it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_tracing_is_off_unless_an_otlp_endpoint_is_set():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = ("import django; django.setup(); from prodplan.tracing import _state; "
            "from django.conf import settings; print('provider' in _state, "
            "any('opentelemetry' in m for m in settings.MIDDLEWARE))")
    off = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "prodplan.settings"},
                         capture_output=True, text=True, timeout=120)
    assert off.stdout.split() == ["False", "False"], off.stderr[-2000:]
    on = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env={**env, "DJANGO_SETTINGS_MODULE": "prodplan.settings",
                             "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert on.stdout.split() == ["True", "True"], on.stderr[-2000:]


@pytest.fixture
def spans():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from prodplan.tracing import configure_tracing, shutdown_tracing

    exporter = InMemorySpanExporter()
    configure_tracing(exporter=exporter)
    yield exporter
    shutdown_tracing()


def test_a_request_has_its_view_and_sql_spans_in_one_trace(spans, db, api_key):
    from rest_framework.test import APIClient

    client = APIClient()  # built after instrumentation: its handler loads the tracing middleware
    client.credentials(HTTP_X_API_KEY=api_key)
    spans.clear()  # the fixtures' own queries (creating the key) are not part of the request
    assert client.get("/api/prodplan/orders").status_code == 200
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert len(server) == 1 and server[0].attributes.get("http.route", "").endswith("prodplan/orders")
    sql = [s for s in finished if s.attributes.get("db.system") == "postgresql"]
    assert sql and all(s.context.trace_id == server[0].context.trace_id for s in sql)
    assert all(s.parent is not None for s in sql)


def test_an_ingestion_task_span_is_in_the_trace_of_the_request_that_queued_it(
        spans, empty_tables, keyed_client, tmp_path, settings, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from tests.ingestion.builders import write_workbook

    settings.UPLOAD_DIR = tmp_path / "uploads"
    client = APIClient()
    client.credentials(**keyed_client._credentials)
    path = write_workbook(tmp_path / "wb.xlsx")
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/octet-stream")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/ingestion/run", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.kind.name == "SERVER" and s.attributes.get("http.method") == "POST")
    task = [s for s in finished if "ingest_run_task" in s.name]
    assert task, [(s.name, s.kind.name) for s in finished if s.attributes.get("db.system") is None][:30]
    assert all(s.context.trace_id == request.context.trace_id for s in task)
