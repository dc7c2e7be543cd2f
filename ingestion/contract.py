"""The workbook contract (shared/DATA_CONTRACT.md) as data: sheets, exact headers, keys and column types."""

from __future__ import annotations

from dataclasses import dataclass, field

# Column kinds: how a cell is coerced.
ID = "id"  # whole number from int, float (123.0) or text ("123")
INT = "int"
FLOAT = "float"
BOOL = "bool"  # 0/1
DATETIME = "datetime"  # Excel datetime or text (2023-04-05 10:31:00, 05/04/2023), Lisbon local time
TEXT = "text"
# The workbook's datetimes are naive local time in this zone (the reader and the merge SQL apply it).
LOCAL_ZONE = "Europe/Lisbon"


@dataclass(frozen=True)
class SheetSpec:
    name: str
    columns: dict[str, str]  # exact header -> kind
    key: tuple[str, ...] = ()  # empty: no key in the file (identity is content)
    required: tuple[str, ...] = field(default=())  # columns that must be filled (besides the key)
    full_snapshot: bool = True  # rows missing from a new file are deleted (guarded by --allow-shrink)
    # Personal data (DATA_CONTRACT: never in logs or unauthenticated responses): profiles keep counts only.
    personal: frozenset[str] = frozenset()

    @property
    def headers(self) -> list[str]:
        return list(self.columns)


ORDERS = SheetSpec(
    "OrdensFabrico",
    {
        "Of_Id": ID,
        "Of_DataCriacao": DATETIME,
        "Of_DataAcabamento": DATETIME,
        "Of_ProdutoId": ID,
        "Of_FaseId": ID,
        "Of_DataTransporte": DATETIME,
    },
    key=("Of_Id",),
)
ORDER_PHASES = SheetSpec(
    "FasesOrdemFabrico",
    {
        "FaseOf_Id": ID,
        "FaseOf_OfId": ID,
        "FaseOf_Inicio": DATETIME,
        "FaseOf_Fim": DATETIME,
        "FaseOf_DataPrevista": DATETIME,
        "FaseOf_Coeficiente": FLOAT,
        "FaseOf_CoeficienteX": FLOAT,
        "FaseOf_FaseId": ID,
        "FaseOf_Peso": FLOAT,
        "FaseOf_Retorno": BOOL,
        "FaseOf_Turno": INT,
        "FaseOf_Sequencia": INT,
    },
    key=("FaseOf_Id",),
    required=("FaseOf_OfId",),
)
ASSIGNMENTS = SheetSpec(
    "FuncionariosFaseOrdemFabrico",
    {
        "FuncionarioFaseOf_FaseOfId": ID,
        "FuncionarioFaseOf_FuncionarioId": ID,
        "FuncionarioFaseOf_Chefe": BOOL,
    },
    key=("FuncionarioFaseOf_FaseOfId", "FuncionarioFaseOf_FuncionarioId"),
)
ERRORS = SheetSpec(
    "OrdemFabricoErros",
    {
        "Erro_Descricao": TEXT,
        "Erro_OfId": ID,
        "Erro_FaseAvaliacao": ID,
        "OFCH_GRAVIDADE": INT,
        "Erro_FaseOfAvaliacao": ID,
        "Erro_FaseOfCulpada": ID,
    },
    key=(),
    required=("Erro_OfId", "OFCH_GRAVIDADE"),
)
EMPLOYEES = SheetSpec(
    "Funcionarios",
    {"Funcionario_Id": ID, "Funcionario_Nome": TEXT, "Funcionario_Activo": BOOL},
    key=("Funcionario_Id",),
    personal=frozenset({"Funcionario_Nome"}),
)
SKILLS = SheetSpec(
    "FuncionariosFasesAptos",
    {"FuncionarioFase_FuncionarioId": ID, "FuncionarioFase_FaseId": ID, "FuncionarioFase_Inicio": DATETIME},
    key=("FuncionarioFase_FuncionarioId", "FuncionarioFase_FaseId"),
)
PHASES = SheetSpec(
    "Fases",
    {"Fase_Id": ID, "Fase_Nome": TEXT, "Fase_Sequencia": INT, "Fase_DeProducao": BOOL, "Fase_Automatica": BOOL},
    key=("Fase_Id",),
)
PRODUCTS = SheetSpec(
    "Modelos",
    {
        "Produto_Id": ID,
        "Produto_Nome": TEXT,
        "Produto_PesoDesmolde": FLOAT,
        "Produto_PesoAcabamento": FLOAT,
        "Produto_QtdGelDeck": FLOAT,
        "Produto_QtdGelCasco": FLOAT,
    },
    key=("Produto_Id",),
)
ROUTE_STEPS = SheetSpec(
    "FasesStandardModelos",
    {
        "ProdutoFase_ProdutoId": ID,
        "ProdutoFase_FaseId": ID,
        "ProdutoFase_Sequencia": INT,
        "ProdutoFase_Coeficiente": FLOAT,
        "ProdutoFase_CoeficienteX": FLOAT,
    },
    key=("ProdutoFase_ProdutoId", "ProdutoFase_FaseId", "ProdutoFase_Sequencia"),
)

# Load order: catalogues first, then orders and what hangs off them.
SHEETS: list[SheetSpec] = [PHASES, PRODUCTS, ROUTE_STEPS, EMPLOYEES, SKILLS, ORDERS, ORDER_PHASES, ASSIGNMENTS, ERRORS]
SHEETS_BY_NAME: dict[str, SheetSpec] = {sheet.name: sheet for sheet in SHEETS}


def is_personal(sheet: str, column: str) -> bool:
    """True for a column of personal data: its values never leave the database (no examples, min, max)."""
    spec = SHEETS_BY_NAME.get(sheet)
    return bool(spec and column in spec.personal)


# Row counts of the real file (scale 1.0 of the demo generator).
REAL_ROW_COUNTS = {
    "OrdensFabrico": 27_380,
    "FasesOrdemFabrico": 519_079,
    "FuncionariosFaseOrdemFabrico": 423_769,
    "OrdemFabricoErros": 89_836,
    "Funcionarios": 902,
    "FuncionariosFasesAptos": 902,
    "Fases": 71,
    "Modelos": 894,
    "FasesStandardModelos": 15_348,
}

# References of the contract: (sheet, column) -> (target sheet, target column), with the real match rate.
REFERENCES = [
    ("OrdensFabrico", "Of_ProdutoId", "Modelos", "Produto_Id"),
    ("OrdensFabrico", "Of_FaseId", "Fases", "Fase_Id"),
    ("FasesOrdemFabrico", "FaseOf_OfId", "OrdensFabrico", "Of_Id"),
    ("FasesOrdemFabrico", "FaseOf_FaseId", "Fases", "Fase_Id"),
    ("FuncionariosFaseOrdemFabrico", "FuncionarioFaseOf_FaseOfId", "FasesOrdemFabrico", "FaseOf_Id"),
    ("FuncionariosFaseOrdemFabrico", "FuncionarioFaseOf_FuncionarioId", "Funcionarios", "Funcionario_Id"),
    ("OrdemFabricoErros", "Erro_OfId", "OrdensFabrico", "Of_Id"),
    ("OrdemFabricoErros", "Erro_FaseAvaliacao", "Fases", "Fase_Id"),
    ("OrdemFabricoErros", "Erro_FaseOfAvaliacao", "FasesOrdemFabrico", "FaseOf_Id"),
    ("OrdemFabricoErros", "Erro_FaseOfCulpada", "FasesOrdemFabrico", "FaseOf_Id"),
    ("FuncionariosFasesAptos", "FuncionarioFase_FuncionarioId", "Funcionarios", "Funcionario_Id"),
    ("FuncionariosFasesAptos", "FuncionarioFase_FaseId", "Fases", "Fase_Id"),
    ("FasesStandardModelos", "ProdutoFase_ProdutoId", "Modelos", "Produto_Id"),
    ("FasesStandardModelos", "ProdutoFase_FaseId", "Fases", "Fase_Id"),
]

REAL_MATCH_RATES = {
    ("FuncionariosFaseOrdemFabrico", "FuncionarioFaseOf_FaseOfId"): 0.323,
    ("OrdensFabrico", "Of_ProdutoId"): 0.725,
}
PLANNED_DATE_FILL_RATE = 0.048
CULPRIT_FILL_RATE = 0.585
