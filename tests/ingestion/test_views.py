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
    user = User.objects.create_user("steward", password="pw-steward-123", is_staff=True)  # stewards triage in admin
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


def test_supervisor_sees_runs_and_reject_counts_without_admin_links(supervisor_client, ingested):
    """A supervisor cannot enter the admin: the page, the run report and the progress give counts, no /admin/ link."""
    from django.db.models import Sum

    from ingestion.models import SheetRun

    run_id = ingested["run_id"]
    html = supervisor_client.get("/ingestion/").content.decode()
    assert "/admin/" not in html and f'href="/ingestion/runs/{run_id}/"' in html
    rejected = SheetRun.objects.filter(run_id=run_id).aggregate(n=Sum("rows_rejected"))["n"] or 0
    assert rejected > 0 and f'data-rejects="{rejected}"' in html
    report = supervisor_client.get(f"/ingestion/runs/{run_id}/").content.decode()
    assert "/admin/" not in report and 'id="sheet-table"' in report
    assert "/admin/" not in supervisor_client.get(f"/ingestion/runs/{run_id}/?poll=1", **HX).content.decode()


def test_freshness_chip_measures_the_age_of_the_data_not_of_the_run(supervisor_client, ingested):
    """The run finished just now, but the data it loaded is as of three days and two hours ago: three days old."""
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    IngestionRun.objects.filter(pk=ingested["run_id"]).update(as_of=now - timedelta(days=3, hours=2), finished_at=now)
    chip = supervisor_client.get("/ingestion/freshness/", HTTP_ACCEPT_LANGUAGE="en", **HX)
    html = chip.content.decode()
    assert chip.status_code == 200 and "3 days old" in html
    age = float(re.search(r'data-age-seconds="(\d+)"', html).group(1))
    assert abs(age - (3 * 86400 + 2 * 3600)) < 120
    assert 'hx-trigger="ingestion-run-done from:body, every 60s"' in html  # reloads when a run ends
    IngestionRun.objects.filter(pk=ingested["run_id"]).update(as_of=now - timedelta(hours=5))
    assert "5 hours old" in supervisor_client.get("/ingestion/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_a_failed_run_says_failed_and_its_end_reloads_the_chip(steward_client, ingested, settings, broker_down,
                                                              django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    upload = SimpleUploadedFile("Folha_IA.xlsx", ingested["path"].read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        steward_client.post("/ingestion/", {"workbook": upload}, **HX)
    run = IngestionRun.objects.order_by("-id").first()
    assert run.status == "failed"
    polled = steward_client.get(f"/ingestion/runs/{run.pk}/?poll=1", HTTP_ACCEPT_LANGUAGE="en", **HX)
    assert polled.status_code == 286 and polled["HX-Trigger"] == "ingestion-run-done"
    html = polled.content.decode()
    stages = re.findall(r"<td>([^<]*)</td>\s*</tr>", html)
    assert stages and set(stages) == {"failed"}  # every sheet: nothing of a failed run was stored
    assert '<span class="run-status">Failed</span>' in html
    page = steward_client.get(f"/ingestion/runs/{run.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The run failed; nothing already stored changed" in page and "task queue unavailable" in page
    listing = steward_client.get("/ingestion/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-status="failed">Failed</td>' in listing and 'data-status="failed">failed</span>' in listing
