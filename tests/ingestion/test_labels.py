"""Ingestion's stored English audit texts (reject messages, issue details, the shrink refusal) read in pt-PT, from real runs."""

from __future__ import annotations

from django.utils import translation

from ingestion import labels
from ingestion.models import DataQualityIssue, Reject
from ingestion.services import ingest_workbook
from tests.ingestion.builders import base_rows, write_workbook
from tests.prodplan.test_portuguese import _english_in


def _bad_workbook(tmp_path):
    rows = base_rows()
    rows["OrdensFabrico"].append([1003, "not a date", None, 10, 1, None])  # bad date
    rows["OrdensFabrico"].append([1004, "2025-03-01 10:00:00", None, 999, 1, None])  # a product the catalogue lacks: orphan
    rows["OrdemFabricoErros"].append(["x", 1000, 3, 9, None, None])  # severity 9
    rows["FuncionariosFaseOrdemFabrico"].append([5000, 100, 1])  # duplicate key
    return ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx", rows)))


def test_reject_messages_and_issue_details_read_in_portuguese(empty_tables, tmp_path):
    run = _bad_workbook(tmp_path)
    rejects = list(Reject.objects.filter(run=run))
    issues = list(DataQualityIssue.objects.all())
    assert {r.reason for r in rejects} >= {"bad_date", "bad_severity", "duplicate_key"} and issues
    with translation.override("pt-pt"):
        shown = [labels.reject_message(r.message) for r in rejects]
        details = [labels.issue_detail(kind=i.kind, entity=i.entity, key=i.key, row_count=i.row_count,
                                       measured=i.measured, detail=i.detail) for i in issues]
        reasons = [labels.reject_reason(r.reason) for r in rejects] + [labels.issue_kind(i.kind) for i in issues]
    assert all(text != r.message for text, r in zip(shown, rejects, strict=True))  # every stored message is known
    assert not _english_in(shown + details + reasons, set()), _english_in(shown + details + reasons, set())
    duplicate = next(text for text, r in zip(shown, rejects, strict=True) if r.reason == "duplicate_key")
    assert duplicate.startswith("mesma chave (") and "que a linha" in duplicate
    with translation.override("en"):  # English mode reads the English wording
        english = labels.reject_message(next(r.message for r in rejects if r.reason == "duplicate_key"))
    assert english.startswith("same key (") and english.endswith("of the sheet")


def test_the_shrink_refusal_reads_in_portuguese_without_the_command_line_flag(empty_tables, tmp_path):
    ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")))
    rows = base_rows()
    rows["OrdensFabrico"] = rows["OrdensFabrico"][:1]
    refused = ingest_workbook(path=str(write_workbook(tmp_path / "b.xlsx", rows)))
    assert refused.status == "failed" and "--allow-shrink" in refused.error  # the stored text is for the CLI and the API
    with translation.override("pt-pt"):
        shown = labels.run_error(refused.error)
        status = labels.run_status(refused.status)
    assert shown.startswith("Recusado:") and "OrdensFabrico perderia 2 de 3" in shown and "--allow-shrink" not in shown
    assert status == "Falhou" and not _english_in([shown, status], set())


def test_the_corrections_import_answers_in_portuguese(empty_tables, tmp_path, client):
    """A steward in pt-PT: a file that is not a workbook, then a file imported twice (the second time every row is
    skipped as already resolved) - the messages are Portuguese words, not the import's English codes."""
    import io

    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from openpyxl import load_workbook

    from prodplan.roles import ensure_role_groups

    run = _bad_workbook(tmp_path)
    _, stewards = ensure_role_groups()
    steward = get_user_model().objects.create_user("steward-pt-import", password="x-Very-Long-pass-1", is_staff=True)
    steward.groups.add(stewards)
    client.force_login(steward)
    url = "/admin/ingestion/reject/import-corrections/"
    refused = client.post(url, {"corrections": SimpleUploadedFile("notes.xlsx", b"hello")}, HTTP_ACCEPT_LANGUAGE="pt-pt")
    assert refused.status_code == 400 and "Nada foi importado: não é um livro .xlsx" in refused.content.decode()
    bad_date = Reject.objects.get(run=run, sheet="OrdensFabrico", reason="bad_date")
    exported = client.post("/admin/ingestion/reject/", {"action": "export_xlsx", "_selected_action": [bad_date.pk]},
                           HTTP_ACCEPT_LANGUAGE="pt-pt")
    workbook = load_workbook(io.BytesIO(exported.content))
    workbook["OrdensFabrico"].cell(2, 2).value = "2025-03-04 10:30:00"  # the steward fixes the date
    stream = io.BytesIO()
    workbook.save(stream)
    pages = [client.post(url, {"corrections": SimpleUploadedFile("fixed.xlsx", stream.getvalue())}, follow=True,
                         HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode() for _ in range(2)]
    assert "1 linha corrigida guardada e a sua rejeição resolvida" in pages[0]
    assert "0 linhas corrigidas guardadas" in pages[1]
    report = client.get(url + "report.csv", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode("utf-8-sig")
    assert "já resolvida" in report and "already resolved" not in report  # the skip reason in words, in the report
    for page in pages:
        assert "corrected row" not in page and "already resolved" not in page
