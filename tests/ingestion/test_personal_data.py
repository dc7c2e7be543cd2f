"""Personal data (Funcionario_Nome) never reaches a profile, the data dictionary or the run report."""

from __future__ import annotations

import json

import pytest
from python_calamine import CalamineWorkbook

from ingestion import contract
from ingestion.inspector import profile_workbook, render_dictionary
from ingestion.models import IngestionRun

pytestmark = pytest.mark.django_db


def _workbook_names(path) -> list[str]:
    """Every employee name the fixture's workbook holds (read from the file, not from the database)."""
    workbook = CalamineWorkbook.from_path(str(path))
    try:
        rows = workbook.get_sheet_by_name("Funcionarios").to_python()
    finally:
        workbook.close()
    column = rows[0].index("Funcionario_Nome")
    names = {str(row[column]).strip() for row in rows[1:] if row[column] not in (None, "")}
    assert names, "the fixture's workbook has employee names"
    return sorted(names)


def _leaks(text: str, names: list[str]) -> list[str]:
    return [name for name in names if name in text]


def test_funcionario_nome_is_marked_personal():
    assert contract.is_personal("Funcionarios", "Funcionario_Nome")
    assert not contract.is_personal("Funcionarios", "Funcionario_Id")
    assert not contract.is_personal("Modelos", "Produto_Nome")


def test_stored_profile_of_the_ingested_workbook_holds_no_employee_name(ingested, db):
    names = _workbook_names(ingested["path"])
    profile = IngestionRun.objects.get(pk=ingested["run_id"]).profile
    assert profile and "Funcionarios" in profile["sheets"], "the session's run has its profile"
    text = json.dumps(profile, ensure_ascii=False, default=str)
    assert _leaks(text, names) == []
    column = profile["sheets"]["Funcionarios"]["columns"]["Funcionario_Nome"]
    assert column["personal"] is True
    assert column["examples"] == [] and column["min"] is None and column["max"] is None
    assert column["filled"] > 0 and column["distinct"] > 0  # the counts stay
    # Other text columns keep their examples: only personal columns are redacted.
    assert profile["sheets"]["Modelos"]["columns"]["Produto_Nome"]["examples"]


def test_fresh_profile_and_dictionary_hold_no_employee_name(ingested):
    names = _workbook_names(ingested["path"])
    profile = profile_workbook(ingested["path"])
    assert _leaks(json.dumps(profile, ensure_ascii=False, default=str), names) == []
    assert _leaks(render_dictionary(profile), names) == []


def test_report_needs_credentials_and_holds_no_employee_name(ingested, db, anonymous_api_client, keyed_client):
    api_client = anonymous_api_client
    names = _workbook_names(ingested["path"])
    url = f"/api/ingestion/report/{ingested['run_id']}"
    anonymous = api_client.get(url)
    assert anonymous.status_code in (401, 403)
    assert ingested["path"].name not in anonymous.content.decode()
    assert api_client.get(f"/api/ingestion/status/{ingested['run_id']}").status_code in (401, 403)
    keyed = keyed_client.get(url)
    assert keyed.status_code == 200 and keyed.json()["profile"]["sheets"]["Funcionarios"]
    assert _leaks(keyed.content.decode(), names) == []


def test_report_redacts_a_profile_stored_before_the_redaction(ingested, db, keyed_client):
    names = _workbook_names(ingested["path"])
    old = IngestionRun.objects.get(pk=ingested["run_id"]).profile
    column = old["sheets"]["Funcionarios"]["columns"]["Funcionario_Nome"]
    column.update(examples=names[:5], min=names[0], max=names[-1], text_length_max=len(names[0]))
    column.pop("personal", None)
    IngestionRun.objects.filter(pk=ingested["run_id"]).update(profile=old)  # rolled back with the test
    body = keyed_client.get(f"/api/ingestion/report/{ingested['run_id']}")
    assert body.status_code == 200
    assert _leaks(body.content.decode(), names) == []
    redacted = body.json()["profile"]["sheets"]["Funcionarios"]["columns"]["Funcionario_Nome"]
    assert redacted["examples"] == [] and redacted["min"] is None and redacted["personal"] is True

