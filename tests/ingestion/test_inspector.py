"""Workbook inspector: profile figures, reference match rates, structure problems, reports."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from openpyxl import Workbook
from python_calamine import CalamineWorkbook

from ingestion import contract
from ingestion.demo import generate_demo_workbook
from ingestion.inspector import (
    BAD_ID,
    WorkbookUnreadable,
    parse_id,
    profile_workbook,
    render_dictionary,
    write_reports,
)

SCALE = 0.005


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("inspector") / "demo.xlsx"
    manifest = generate_demo_workbook(path, scale=SCALE, seed=7, as_of="2025-12-15")
    return {"path": path, "manifest": manifest, "profile": profile_workbook(path)}


def _relationship(profile: dict, source: str) -> dict:
    return next(rel for rel in profile["relationships"] if rel["source"] == source)


def test_ids_are_normalised():
    assert parse_id(123) == parse_id(123.0) == parse_id("123") == parse_id(" 123 ") == 123
    assert parse_id(None) is parse_id("") is parse_id("NULL") is None
    assert parse_id("12a3") is BAD_ID and parse_id(1.5) is BAD_ID and parse_id(True) is BAD_ID


def test_profile_is_json_serialisable_with_the_public_keys(demo):
    profile = demo["profile"]
    assert {"sheets", "relationships", "missing_sheets", "missing_headers", "extra_sheets", "extra_columns"} <= set(profile)
    assert json.loads(json.dumps(profile)) == json.loads(json.dumps(profile, sort_keys=True))


def test_complete_workbook_has_no_structure_problems(demo):
    profile = demo["profile"]
    assert profile["missing_sheets"] == [] and profile["missing_headers"] == {}
    assert profile["extra_sheets"] == [] and profile["extra_columns"] == {}
    for sheet, facts in demo["manifest"]["sheets"].items():
        assert profile["sheets"][sheet]["rows"] == facts["rows"]


def test_every_contract_reference_is_measured(demo):
    relationships = demo["profile"]["relationships"]
    assert len(relationships) == len(contract.REFERENCES)
    assert all(rel["status"] == "ok" and 0 <= rel["match_rate"] <= 1 for rel in relationships)


def test_reports_the_planted_match_rates(demo):
    profile, rates = demo["profile"], demo["manifest"]["planted_rates"]
    assignments = _relationship(profile, "FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FaseOfId")
    products = _relationship(profile, "OrdensFabrico.Of_ProdutoId")
    assert assignments["match_rate"] == pytest.approx(0.323, abs=0.02)
    assert products["match_rate"] == pytest.approx(0.725, abs=0.02)
    assert assignments["contract_rate"] == 0.323 and products["contract_rate"] == 0.725
    by_source = {name.split(" ")[0]: figure for name, figure in rates.items()}
    assert assignments["match_rate"] == pytest.approx(by_source[assignments["source"]]["achieved"], abs=1e-6)
    assert products["match_rate"] == pytest.approx(by_source[products["source"]]["achieved"], abs=1e-6)
    assert products["orphan_distinct"] == products["distinct_values"] - products["matched_distinct"] > 0
    assert 0 < len(products["orphan_sample"]) <= 20


def test_orphans_are_values_absent_from_the_target(demo):
    products = _relationship(demo["profile"], "OrdensFabrico.Of_ProdutoId")
    workbook = CalamineWorkbook.from_path(str(demo["path"]))
    catalogue = {parse_id(row[0]) for row in workbook.get_sheet_by_name("Modelos").to_python()[1:]}
    workbook.close()
    assert products["orphan_sample"] and not set(products["orphan_sample"]) & catalogue


def test_reports_null_rates(demo):
    sheets = demo["profile"]["sheets"]
    planned = sheets["FasesOrdemFabrico"]["columns"]["FaseOf_DataPrevista"]
    culprit = sheets["OrdemFabricoErros"]["columns"]["Erro_FaseOfCulpada"]
    assert 1 - planned["null_rate"] == pytest.approx(0.048, abs=0.02)
    assert 1 - culprit["null_rate"] == pytest.approx(0.585, abs=0.02)
    rates = {name.split(" ")[0]: figure for name, figure in demo["manifest"]["planted_rates"].items()}
    assert 1 - planned["null_rate"] == pytest.approx(rates["FasesOrdemFabrico.FaseOf_DataPrevista"]["achieved"], abs=1e-5)
    assert 1 - culprit["null_rate"] == pytest.approx(rates["OrdemFabricoErros.Erro_FaseOfCulpada"]["achieved"], abs=1e-5)
    assert culprit["types"].get("NULL", 0) > 0, "literal NULL counts as null"
    assert sheets["OrdensFabrico"]["columns"]["Of_DataCriacao"]["null_rate"] == 0


def test_column_figures(demo):
    columns = demo["profile"]["sheets"]["FasesOrdemFabrico"]["columns"]
    phase = columns["FaseOf_FaseId"]
    assert phase["unparseable_ids"] == 3 and "12a3" in phase["unparseable_examples"]
    assert {"int", "text"} <= set(phase["types"])
    start = columns["FaseOf_Inicio"]
    assert {"datetime", "text"} <= set(start["types"])
    assert datetime.fromisoformat(start["min"]) < datetime.fromisoformat(start["max"]) <= datetime(2025, 12, 16)
    assert isinstance(columns["FaseOf_Id"]["min"], int) and columns["FaseOf_Id"]["examples"]
    assert columns["FaseOf_Turno"]["distinct"] == 3
    key = demo["profile"]["sheets"]["OrdensFabrico"]["key"]
    assert (key["missing"], key["duplicates"]) == (3, 3)


def test_write_reports(demo, tmp_path):
    paths = write_reports(demo["profile"], tmp_path / "reports")
    markdown = paths["dictionary"].read_text(encoding="utf-8")
    for spec in contract.SHEETS:
        assert f"`{spec.name}`" in markdown
    assert "FuncionarioFaseOf_FaseOfId" in markdown and "32." in markdown
    relationships = json.loads(paths["relationships"].read_text(encoding="utf-8"))["relationships"]
    assert relationships == demo["profile"]["relationships"]
    assert json.loads(paths["profile"].read_text(encoding="utf-8"))["sheets"].keys() == demo["profile"]["sheets"].keys()


def test_missing_sheets_headers_and_extras_are_listed(tmp_path):
    path = tmp_path / "partial.xlsx"
    workbook = Workbook()
    phases = workbook.active
    phases.title = "Fases"
    phases.append(["Fase_Id", "Fase_Nome", "Fase_Sequencia", "Fase_DeProducao", "Obs"])  # no Fase_Automatica
    phases.append([1, "Moldação", 10, 1, "x"])
    phases.append(["1", "Gelcoat", 20, 1, None])
    orders = workbook.create_sheet("OrdensFabrico")
    orders.append(contract.ORDERS.headers)
    orders.append([10, datetime(2024, 1, 2, 8, 0), None, 5, 1.0, None])
    orders.append(["11", "02/01/2024 09:00", "NULL", 6, 2, None])
    workbook.create_sheet("Notas").append(["texto"])
    workbook.create_sheet("Modelos")  # present but empty: every header is missing
    workbook.save(path)

    profile = profile_workbook(path)
    present = ("Fases", "OrdensFabrico", "Modelos")
    assert profile["missing_sheets"] == [s.name for s in contract.SHEETS if s.name not in present]
    assert profile["missing_headers"] == {"Fases": ["Fase_Automatica"], "Modelos": contract.PRODUCTS.headers}
    assert profile["sheets"]["Modelos"]["rows"] == 0
    assert profile["extra_sheets"] == ["Notas"]
    assert profile["extra_columns"] == {"Fases": ["Obs"]}
    fase_id = profile["sheets"]["Fases"]["columns"]["Fase_Id"]
    assert fase_id["distinct"] == 1, "1 and '1' are the same id"
    assert profile["sheets"]["Fases"]["key"]["duplicates"] == 1
    to_phase = _relationship(profile, "OrdensFabrico.Of_FaseId")
    assert (to_phase["match_rate"], to_phase["orphan_sample"], to_phase["orphan_rows"]) == (0.5, [2], 1)
    to_product = _relationship(profile, "OrdensFabrico.Of_ProdutoId")
    assert to_product["status"] == "missing" and to_product["match_rate"] is None
    assert to_product["missing"] == ["Modelos.Produto_Id"]
    markdown = render_dictionary(profile)
    assert "Missing headers in `Fases`: Fase_Automatica" in markdown and "Extra sheets (not in the contract): Notas" in markdown
    finished = profile["sheets"]["OrdensFabrico"]["columns"]["Of_DataAcabamento"]
    assert finished["null_rate"] == 1.0 and finished["types"] == {"NULL": 1, "empty": 1}
    json.dumps(profile)


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path):
    path = tmp_path / "notes.xlsx"
    path.write_text("not a workbook", encoding="utf-8")
    with pytest.raises(WorkbookUnreadable, match="notes.xlsx"):
        profile_workbook(path)
