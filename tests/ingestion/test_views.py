"""Ingestion page: upload checks and roles, per-sheet progress polling (286 when done), run report with admin links."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import IngestionRun

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def steward_client(client, db, settings, tmp_path):
    from prodplan.roles import DATA_STEWARDS, ensure_role_groups

    settings.UPLOAD_DIR = tmp_path / "uploads"
    ensure_role_groups()
    user = User.objects.create_user("steward", password="pw-steward-123")
    user.groups.add(Group.objects.get(name=DATA_STEWARDS))
    client.force_login(user)
    return client


def test_page_lists_runs_and_links_rejects(steward_client, ingested, pinned_queries):
    with pinned_queries("ingestion.test_views.test_page_lists_runs_and_links_rejects"):
        html = steward_client.get("/ingestion/").content.decode()
    run_id = ingested["run_id"]
    assert html.count("<h1") == 1 and 'id="upload-form"' in html
    assert f'href="/ingestion/runs/{run_id}/"' in html
    assert f'href="/admin/ingestion/reject/?run__id__exact={run_id}"' in html
    assert '<label for="id_workbook"' in html


def test_run_report_matches_the_manifest(steward_client, ingested, pinned_queries):
    from ingestion.models import Reject

    with pinned_queries("ingestion.test_views.test_run_report_matches_the_manifest"):
        html = steward_client.get(f"/ingestion/runs/{ingested['run_id']}/").content.decode()
    table = re.search(r'<table id="sheet-table">.*?</table>', html, re.S).group(0)
    assert table.count("<tr>") == 1 + 9
    assert f"<strong>{Reject.objects.filter(run_id=ingested['run_id']).count()}</strong>" in html
    assert f'href="/admin/ingestion/reject/?run__id__exact={ingested["run_id"]}"' in html
    for sheet, info in ingested["manifest"].get("sheets", {}).items():
        rows = info.get("rows") if isinstance(info, dict) else None
        if rows is not None:
            assert re.search(rf"<td>{sheet}</td><td class=\"num\">{rows}</td>", table), sheet


def test_upload_rejects_a_non_workbook(steward_client, ingested):
    before = IngestionRun.objects.count()
    bad = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")
    response = steward_client.post("/ingestion/", {"workbook": bad}, **HX)
    assert response.status_code == 200 and "não é um livro .xlsx" in response.content.decode()  # pt-PT page
    assert IngestionRun.objects.count() == before


def test_viewer_cannot_upload(client, db, ingested):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-123"))
    upload = SimpleUploadedFile("w.xlsx", ingested["path"].read_bytes())
    assert client.post("/ingestion/", {"workbook": upload}).status_code == 403


def test_upload_polls_until_done(steward_client, ingested, django_capture_on_commit_callbacks):
    from ingestion.services import ingest_run

    upload = SimpleUploadedFile("Folha_IA.xlsx", ingested["path"].read_bytes())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        html = steward_client.post("/ingestion/", {"workbook": upload}, **HX).content.decode()
    assert len(callbacks) == 1  # the task is started after commit (not run inside the request)
    run = IngestionRun.objects.order_by("-id").first()
    assert run.status == "pending" and run.trigger == "ui" and run.file_name == "Folha_IA.xlsx"
    assert f'hx-get="/ingestion/runs/{run.pk}/?poll=1"' in html and 'hx-trigger="every 1s"' in html
    assert html.count('role="progressbar"') == 1 + 9
    polling = steward_client.get(f"/ingestion/runs/{run.pk}/?poll=1", **HX)
    assert polling.status_code == 200
    ingest_run(run_id=run.pk)  # what the task does; same file as the last success: a no-op run
    done = steward_client.get(f"/ingestion/runs/{run.pk}/?poll=1", **HX)
    assert done.status_code == 286
    body = done.content.decode()
    assert 'id="run-done"' in body and "hx-trigger" not in body


def test_upload_with_the_broker_down_shows_the_run_failed_with_the_reason(steward_client, ingested, settings,
                                                                          broker_down, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a deployment with Redis: the worker would run it
    upload = SimpleUploadedFile("Folha_IA.xlsx", ingested["path"].read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        steward_client.post("/ingestion/", {"workbook": upload}, **HX)
    run = IngestionRun.objects.order_by("-id").first()
    assert run.status == "failed" and run.error.startswith("task queue unavailable")
    polled = steward_client.get(f"/ingestion/runs/{run.pk}/?poll=1", **HX)
    assert polled.status_code == 286 and "task queue unavailable" in polled.content.decode()
