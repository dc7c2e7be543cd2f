"""Set-wise SQL of the pipeline: staging tables, validation, merge into the domain tables, orphans."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from ingestion.contract import BOOL, DATETIME, FLOAT, ID, INT, LOCAL_ZONE, SHEETS_BY_NAME, TEXT, SheetSpec
from prodplan.gates import reference_match_sql

# Staging keeps datetimes as naive Lisbon local time ("timestamp"); the merge applies the zone set-wise
# (AT TIME ZONE in _staged), which is ~3 µs per cell cheaper than localising 1.5 M values in Python.
SQL_TYPES = {ID: "bigint", INT: "integer", FLOAT: "double precision", BOOL: "boolean", DATETIME: "timestamp", TEXT: "text"}
FAMILY_SQL = (
    "coalesce(substring(upper({name}) from '(?:^|[^A-Z0-9])(K1|K2|K4|C1|C2|C4)(?:[^A-Z0-9]|$)'), 'OTHER')"
)


def q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def staging_table(spec: SheetSpec) -> str:
    return "stg_" + spec.name.lower()


def staging_ddl(spec: SheetSpec) -> str:
    columns = ", ".join(f"{q(h)} {SQL_TYPES[kind]}" for h, kind in spec.columns.items())
    extra = ", _hash text, _occurrence integer" if not spec.key else ""
    # TEMP tables are never WAL-logged (the UNLOGGED staging of the design), private to this
    # session, and dropped at commit or when a killed run's connection goes away.
    return (
        f"CREATE TEMP TABLE {staging_table(spec)} (_row integer NOT NULL, _reject text, _col text, _msg text, "
        f"_raw jsonb, {columns}{extra}) ON COMMIT DROP"
    )


BINARY_TYPES = {ID: "int8", INT: "int4", FLOAT: "float8", BOOL: "bool", DATETIME: "timestamp", TEXT: "text"}


def copy_types(spec: SheetSpec) -> list[str]:
    """PostgreSQL types of copy_columns(), for a binary COPY (about 6x cheaper than text for 1 M rows)."""
    types = ["int4", "text", "text", "text", "jsonb", *(BINARY_TYPES[kind] for kind in spec.columns.values())]
    if not spec.key:
        types.append("text")
    return types


def copy_columns(spec: SheetSpec) -> list[str]:
    columns = ["_row", "_reject", "_col", "_msg", "_raw", *spec.headers]
    if not spec.key:
        columns.append("_hash")
    return columns


def validation_sql(spec: SheetSpec) -> list[str]:
    """Set-wise checks, in order; each marks still-valid rows only, so every reject has one reason."""
    table = staging_table(spec)
    statements = []
    for header in (*spec.key, *[h for h in spec.required if spec.columns[h] == ID]):
        statements.append(
            f"UPDATE {table} SET _reject = 'missing_key', _col = '{header}', _msg = '{header} is empty' "
            f"WHERE _reject IS NULL AND {q(header)} IS NULL"
        )
    if spec.name == "OrdemFabricoErros":
        statements.append(
            f"UPDATE {table} SET _reject = 'bad_severity', _col = 'OFCH_GRAVIDADE', "
            "_msg = 'OFCH_GRAVIDADE ' || coalesce(\"OFCH_GRAVIDADE\"::text, 'empty') || ' is not 1, 2 or 3' "
            "WHERE _reject IS NULL AND (\"OFCH_GRAVIDADE\" IS NULL OR \"OFCH_GRAVIDADE\" NOT IN (1, 2, 3))"
        )
    if spec.name == "FasesOrdemFabrico":
        statements.append(
            f"UPDATE {table} SET _reject = 'end_before_start', _col = 'FaseOf_Fim', "
            "_msg = 'FaseOf_Fim ' || to_char(\"FaseOf_Fim\", 'YYYY-MM-DD HH24:MI:SS') "
            "|| ' is before FaseOf_Inicio ' || to_char(\"FaseOf_Inicio\", 'YYYY-MM-DD HH24:MI:SS') "
            "WHERE _reject IS NULL AND \"FaseOf_Fim\" < \"FaseOf_Inicio\""
        )
    if spec.key:
        keys = ", ".join(q(k) for k in spec.key)
        statements.append(
            # A hash aggregate finds the duplicated keys; only their rows are sorted to find each key's first row.
            f"WITH duplicated AS (SELECT {keys} FROM {table} WHERE _reject IS NULL GROUP BY {keys} HAVING count(*) > 1), "
            f"ranked AS (SELECT _row, min(_row) OVER w AS first_row, row_number() OVER w AS rn "
            f"FROM {table} WHERE _reject IS NULL AND ({keys}) IN (SELECT * FROM duplicated) "
            f"WINDOW w AS (PARTITION BY {keys} ORDER BY _row)) "
            f"UPDATE {table} s SET _reject = 'duplicate_key', _col = '{spec.key[0]}', "
            f"_msg = 'same key ({', '.join(spec.key)}) as row ' || ranked.first_row "
            f"FROM ranked WHERE s._row = ranked._row AND ranked.rn > 1"
        )
    else:
        statements.append(
            f"WITH numbered AS (SELECT _row, row_number() OVER (PARTITION BY \"Erro_OfId\", _hash ORDER BY _row) AS n "
            f"FROM {table} WHERE _reject IS NULL) "
            f"UPDATE {table} s SET _occurrence = numbered.n FROM numbered WHERE s._row = numbered._row"
        )
    return statements


REJECTS_MET = "stg_rejects_met"
LIVE_REJECT = "status IN ('open', 'acknowledged', 'ignored')"


def reject_record_sql(spec: SheetSpec) -> list[tuple[str, str]]:
    """Record a staged sheet's rejects: (name, statement) pairs, the run id for every placeholder.

    A reject's identity survives runs: the sheet plus the row's key ("k:" + the typed key), or a hash
    of its cells when it has no usable key (no key in the sheet, a key that is empty or unparseable,
    or a duplicate key, "h:" + md5); the n-th row of one run with the same identity gets "#n". A live
    reject (open, acknowledged, ignored) met again moves to this run with its triage decision; a new
    identity is inserted; a live reject of this sheet this run did not meet is superseded (the row was
    fixed or is gone). A resolved keyed reject met again unchanged stays resolved (its correction is stored)."""
    table = staging_table(spec)
    typed = ", ".join(f"'{h}', {q(h)}" for h in spec.headers)
    original = f"coalesce(_raw, jsonb_build_object({typed}))"
    if spec.key:
        usable = " AND ".join(f"{q(k)} IS NOT NULL" for k in spec.key)
        key = "concat_ws('|', " + ", ".join(f"{q(k)}::text" for k in spec.key) + ")"
        base = f"CASE WHEN _reject <> 'duplicate_key' AND {usable} THEN 'k:' || {key} ELSE 'h:' || md5({original}::text) END"
    else:
        base = f"'h:' || md5({original}::text)"
    live = f"r.sheet = '{spec.name}' AND r.{LIVE_REJECT}"
    return [
        ("drop", f"DROP TABLE IF EXISTS {REJECTS_MET}"),
        ("met", (
            f"CREATE TEMP TABLE {REJECTS_MET} ON COMMIT DROP AS "
            "SELECT _row, reason, col, msg, original, base || CASE WHEN n > 1 THEN '#' || n ELSE '' END AS identity "
            "FROM (SELECT _row, _reject AS reason, coalesce(_col, '') AS col, coalesce(_msg, _reject) AS msg, original, base, "
            "row_number() OVER (PARTITION BY base ORDER BY _row) AS n "
            f"FROM (SELECT _row, _reject, _col, _msg, {original} AS original, {base} AS base "
            f"FROM {table} WHERE _reject IS NOT NULL) b) x"
        )),
        ("reused", (
            "UPDATE ingestion_reject r SET run_id = %s, times_seen = r.times_seen + 1, row_number = m._row, "
            "reason = m.reason, \"column\" = m.col, message = m.msg, original = m.original "
            f"FROM {REJECTS_MET} m WHERE {live} AND r.identity = m.identity"
        )),
        # A keyed row the steward corrected (its fixed version is stored and kept, its key being in the file) met
        # again exactly as it was: the resolved reject moves to this run and stays resolved.
        ("resolved_met", (
            "UPDATE ingestion_reject r SET run_id = %s, times_seen = r.times_seen + 1, row_number = m._row "
            f"FROM {REJECTS_MET} m, (SELECT DISTINCT ON (identity) id FROM ingestion_reject WHERE sheet = '{spec.name}' "
            "AND status = 'resolved' AND identity LIKE 'k:%%' ORDER BY identity, id DESC) last "
            "WHERE r.id = last.id AND r.identity = m.identity AND r.original = m.original "
            f"AND NOT EXISTS (SELECT 1 FROM ingestion_reject l WHERE l.sheet = '{spec.name}' AND l.{LIVE_REJECT} "
            "AND l.identity = m.identity)"
        )),
        ("inserted", (
            "INSERT INTO ingestion_reject (run_id, first_seen_run_id, times_seen, sheet, identity, row_number, reason, "
            "\"column\", message, original, status) "
            f"SELECT %s, %s, 1, '{spec.name}', m.identity, m._row, m.reason, m.col, m.msg, m.original, 'open' "
            f"FROM {REJECTS_MET} m WHERE NOT EXISTS (SELECT 1 FROM ingestion_reject r WHERE r.sheet = '{spec.name}' "
            f"AND r.identity = m.identity AND (r.{LIVE_REJECT} OR (r.status = 'resolved' AND r.run_id = %s))) "
            "ORDER BY m._row"
        )),
        ("superseded", (
            "UPDATE ingestion_reject r SET status = 'superseded', closed_in_run_id = %s "
            f"WHERE {live} AND r.run_id <> %s"
        )),
    ]


@dataclass(frozen=True)
class Target:
    """Where a sheet lands: table, column expressions over the staging row, conflict key."""

    table: str
    columns: dict[str, str]
    key: tuple[str, ...]
    source: str = ""  # FROM clause, {staged} standing for _staged(); default: the staged rows aliased s
    delete_key: tuple[tuple[str, str], ...] = field(default=())  # (table column, staging expression) for snapshot deletes


def _s(header: str) -> str:
    """A staging column as the target reads it from _source() (datetimes already timestamptz, see _staged)."""
    return f"s.{q(header)}"


def _staged(spec: SheetSpec) -> str:
    """The staging table as the merge reads it: each datetime (naive Lisbon time) becomes timestamptz once.

    OFFSET 0 keeps the planner from flattening the subquery, which would convert again at every
    reference (an order phase's end feeds five target columns): ~0.4 s less per 500k phases."""
    datetimes = {h for h, kind in spec.columns.items() if kind == DATETIME}
    if not datetimes:
        return staging_table(spec)
    columns = ["_row", "_reject", *spec.headers, *([] if spec.key else ["_hash", "_occurrence"])]
    select = ", ".join(f"({q(c)} AT TIME ZONE '{LOCAL_ZONE}') AS {q(c)}" if c in datetimes else q(c) for c in columns)
    return f"(SELECT {select} FROM {staging_table(spec)} OFFSET 0)"


# Derived columns that cross sheets, written once for the merge (over staging) and for the
# recomputation of an unchanged sheet's stored rows (over the stored columns), so both agree.
PHASE_EVENT_TIME = "coalesce({ended}, {started}, {created}, {planned}, '2000-01-01 00:00:00+00'::timestamptz)"
ERROR_EVENT_TIME = "coalesce(found.event_time, culprit.event_time, o.created_at)"

TARGETS: dict[str, Target] = {
    "Fases": Target(
        "orders_phase",
        {
            "id": _s("Fase_Id"),
            "name": f"coalesce({_s('Fase_Nome')}, '')",
            "sequence": _s("Fase_Sequencia"),
            "is_production": f"coalesce({_s('Fase_DeProducao')}, true)",
            "is_automatic": f"coalesce({_s('Fase_Automatica')}, false)",
        },
        ("id",),
    ),
    "Modelos": Target(
        "orders_product",
        {
            "id": _s("Produto_Id"),
            "name": f"coalesce({_s('Produto_Nome')}, '')",
            "family": FAMILY_SQL.format(name=f"coalesce({_s('Produto_Nome')}, '')"),
            "demould_weight_kg": _s("Produto_PesoDesmolde"),
            "finished_weight_kg": _s("Produto_PesoAcabamento"),
            "gelcoat_deck_qty": _s("Produto_QtdGelDeck"),
            "gelcoat_hull_qty": _s("Produto_QtdGelCasco"),
        },
        ("id",),
    ),
    "FasesStandardModelos": Target(
        "orders_routestep",
        {
            "product_id": _s("ProdutoFase_ProdutoId"),
            "phase_id": _s("ProdutoFase_FaseId"),
            "sequence": _s("ProdutoFase_Sequencia"),
            "labour_coefficient": _s("ProdutoFase_Coeficiente"),
            "machine_coefficient": _s("ProdutoFase_CoeficienteX"),
        },
        ("product_id", "phase_id", "sequence"),
    ),
    "Funcionarios": Target(
        "orders_employee",
        {
            "id": _s("Funcionario_Id"),
            "name": f"coalesce({_s('Funcionario_Nome')}, '')",
            "is_active": f"coalesce({_s('Funcionario_Activo')}, true)",
        },
        ("id",),
    ),
    "FuncionariosFasesAptos": Target(
        "orders_employeeskill",
        {
            "employee_id": _s("FuncionarioFase_FuncionarioId"),
            "phase_id": _s("FuncionarioFase_FaseId"),
            "qualified_since": _s("FuncionarioFase_Inicio"),
        },
        ("employee_id", "phase_id"),
    ),
    "OrdensFabrico": Target(
        "orders_manufacturingorder",
        {
            "id": _s("Of_Id"),
            "created_at": _s("Of_DataCriacao"),
            "finished_at": _s("Of_DataAcabamento"),
            "product_id": _s("Of_ProdutoId"),
            "current_phase_id": _s("Of_FaseId"),
            "shipped_at": _s("Of_DataTransporte"),
            "is_open": f"{_s('Of_DataAcabamento')} IS NULL",
            "lead_time_days": f"extract(epoch FROM {_s('Of_DataAcabamento')} - {_s('Of_DataCriacao')}) / 86400.0",
        },
        ("id",),
    ),
    "FasesOrdemFabrico": Target(
        "orders_orderphase",
        {
            "id": _s("FaseOf_Id"),
            "order_id": _s("FaseOf_OfId"),
            "phase_id": _s("FaseOf_FaseId"),
            "started_at": _s("FaseOf_Inicio"),
            "ended_at": _s("FaseOf_Fim"),
            "planned_at": _s("FaseOf_DataPrevista"),
            "labour_coefficient": _s("FaseOf_Coeficiente"),
            "machine_coefficient": _s("FaseOf_CoeficienteX"),
            "weight_kg": _s("FaseOf_Peso"),
            "is_rework": f"coalesce({_s('FaseOf_Retorno')}, false)",
            "shift": _s("FaseOf_Turno"),
            "sequence": _s("FaseOf_Sequencia"),
            # The partition key: end, else start, else the order's creation (else the planned date);
            # a phase of an unknown order with no dates at all lands in the default partition's epoch.
            "event_time": PHASE_EVENT_TIME.format(
                ended=_s("FaseOf_Fim"), started=_s("FaseOf_Inicio"), created="o.created_at", planned=_s("FaseOf_DataPrevista")
            ),
            "duration_seconds": f"extract(epoch FROM {_s('FaseOf_Fim')} - {_s('FaseOf_Inicio')})",
            "is_open": f"({_s('FaseOf_Inicio')} IS NOT NULL AND {_s('FaseOf_Fim')} IS NULL)",
            "is_done": f"({_s('FaseOf_Fim')} IS NOT NULL)",
        },
        ("id", "event_time"),
        source="{staged} s LEFT JOIN orders_manufacturingorder o ON o.id = s.\"FaseOf_OfId\"",
        delete_key=(("id", '"FaseOf_Id"'),),
    ),
    "FuncionariosFaseOrdemFabrico": Target(
        "orders_phaseassignment",
        {
            "order_phase_id": _s("FuncionarioFaseOf_FaseOfId"),
            "employee_id": _s("FuncionarioFaseOf_FuncionarioId"),
            "is_leader": f"coalesce({_s('FuncionarioFaseOf_Chefe')}, false)",
        },
        ("order_phase_id", "employee_id"),
    ),
    "OrdemFabricoErros": Target(
        "quality_qualityerror",
        {
            "order_id": _s("Erro_OfId"),
            "description": f"coalesce({_s('Erro_Descricao')}, '')",
            "found_phase_id": _s("Erro_FaseAvaliacao"),
            "severity": _s("OFCH_GRAVIDADE"),
            "found_order_phase_id": _s("Erro_FaseOfAvaliacao"),
            "culprit_order_phase_id": _s("Erro_FaseOfCulpada"),
            "content_hash": "s._hash",
            "occurrence": "s._occurrence",
            # Errors carry no date: the end of the phase where found, else the culprit phase, else the order.
            "event_time": ERROR_EVENT_TIME,
        },
        ("order_id", "content_hash", "occurrence"),
        # Plain joins, hashed by the planner: a lookup by id alone would probe every monthly partition.
        source=(
            "{staged} s "
            "LEFT JOIN orders_orderphase found ON found.id = s.\"Erro_FaseOfAvaliacao\" "
            "LEFT JOIN orders_orderphase culprit ON culprit.id = s.\"Erro_FaseOfCulpada\" "
            "LEFT JOIN orders_manufacturingorder o ON o.id = s.\"Erro_OfId\""
        ),
    ),
}


def _source(spec: SheetSpec, target: Target) -> str:
    return (target.source or "{staged} s").format(staged=_staged(spec))


def _snapshot_keys(spec: SheetSpec, target: Target) -> list[tuple[str, str]]:
    """(target column, staging column) pairs identifying a stored row in the new file."""
    if target.delete_key:
        return list(target.delete_key)
    if not spec.key:
        return [("order_id", '"Erro_OfId"'), ("content_hash", "_hash"), ("occurrence", "_occurrence")]
    return [(column, q(header)) for column, header in zip(target.key, spec.key, strict=True)]


def _vanished_where(spec: SheetSpec) -> str:
    target = TARGETS[spec.name]
    match = " AND ".join(f"k.{staged} = t.{column}" for column, staged in _snapshot_keys(spec, target))
    # For keyed sheets a rejected row's key still counts as present: its stored version is kept.
    valid = "" if spec.key else " AND k._reject IS NULL"
    return f"NOT EXISTS (SELECT 1 FROM {staging_table(spec)} k WHERE {match}{valid})"


def vanished_count_sql(spec: SheetSpec) -> str:
    """(stored rows absent from the new file, stored rows) of a sheet's table."""
    table = TARGETS[spec.name].table
    # NOT EXISTS in a WHERE is a hashed anti-join; inside an aggregate FILTER it would be one index probe per stored row.
    return f"SELECT (SELECT count(*) FROM {table} t WHERE {_vanished_where(spec)}), (SELECT count(*) FROM {table})"


def delete_vanished_sql(spec: SheetSpec, *, touched: str | None = None) -> str:
    """Delete the stored rows absent from the new file; touched: also record their ids in that table."""
    delete = f"DELETE FROM {TARGETS[spec.name].table} t WHERE {_vanished_where(spec)}"
    if touched is None:
        return delete
    return f"WITH gone AS ({delete} RETURNING t.{q(identity_columns(spec)[0])}) INSERT INTO {touched} SELECT * FROM gone"


def upsert_sql(spec: SheetSpec, *, empty_target: bool = False) -> str:
    """INSERT … ON CONFLICT DO UPDATE only where something changed; returns the rows written.

    empty_target: the table holds nothing yet (a first load), so a plain INSERT does the same work
    without a speculative-insertion probe per row (staging keys are already unique after validation)."""
    target = TARGETS[spec.name]
    columns = list(target.columns)
    select = ", ".join(f"{expr} AS {q(col)}" for col, expr in target.columns.items())
    non_key = [c for c in columns if c not in target.key]
    conflict = ", ".join(q(k) for k in target.key)
    if non_key:
        assignments = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in non_key)
        changed = f"({', '.join('t.' + q(c) for c in non_key)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + q(c) for c in non_key)})"
        action = f"DO UPDATE SET {assignments} WHERE {changed}"
        if len(non_key) == 1:
            changed = f"t.{q(non_key[0])} IS DISTINCT FROM EXCLUDED.{q(non_key[0])}"
            action = f"DO UPDATE SET {assignments} WHERE {changed}"
    else:
        action = "DO NOTHING"
    on_conflict = "" if empty_target else f"ON CONFLICT ({conflict}) {action} "
    return (
        f"WITH written AS (INSERT INTO {target.table} AS t ({', '.join(q(c) for c in columns)}) "
        f"SELECT {select} FROM {_source(spec, target)} WHERE s._reject IS NULL{_routing_order(target)} "
        f"{on_conflict}RETURNING 1) SELECT count(*) FROM written"
    )


def identity_columns(spec: SheetSpec) -> list[str]:
    """Target columns that identify a stored row across files (an order phase is its id, whatever its partition)."""
    return [column for column, _ in _snapshot_keys(spec, TARGETS[spec.name])]


def changed_table(spec: SheetSpec) -> str:
    return "chg_" + spec.name.lower()


def target_types_sql() -> str:
    """Column name -> SQL type of a target table (the changed-rows table casts to them, as an INSERT would)."""
    return (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
    )


def changed_rows_sql(spec: SheetSpec, types: dict[str, str]) -> list[str]:
    """A temp table of the valid staged rows that are new or differ from their stored version.

    One hash anti-join of staging against the stored table, values cast to the stored types so
    IS DISTINCT FROM compares what an INSERT would store. _stored tells an update from an insert;
    _old_<column> keeps the stored value of a key column outside the identity (an order phase's
    event_time: its partition), which the update matches on and the derivations compare."""
    target = TARGETS[spec.name]
    identity = identity_columns(spec)
    compared = [c for c in target.columns if c not in identity]
    old_keys = [c for c in target.key if c not in identity]
    new = ", ".join(f"({expr})::{types[col]} AS {q(col)}" for col, expr in target.columns.items())
    join = " AND ".join(f"t.{q(c)} = n.{q(c)}" for c in identity)
    if compared:
        differs = (
            f"({', '.join('t.' + q(c) for c in compared)}) IS DISTINCT FROM ({', '.join('n.' + q(c) for c in compared)})"
            if len(compared) > 1 else f"t.{q(compared[0])} IS DISTINCT FROM n.{q(compared[0])}"
        )
    else:
        differs = "false"
    old = "".join(f", t.{q(c)} AS {q('_old_' + c)}" for c in old_keys)
    table = changed_table(spec)
    return [
        f"DROP TABLE IF EXISTS {table}",
        f"CREATE TEMP TABLE {table} ON COMMIT DROP AS SELECT n.*, t.{q(identity[0])} IS NOT NULL AS _stored{old} "
        f"FROM (SELECT {new} FROM {_source(spec, target)} WHERE s._reject IS NULL) n "
        f"LEFT JOIN {target.table} t ON {join} WHERE t.{q(identity[0])} IS NULL OR {differs}",
        f"ANALYZE {table}",
    ]


def apply_changed_sql(spec: SheetSpec) -> tuple[str | None, str]:
    """(UPDATE, INSERT) writing only the changed rows: the UPDATE rewrites the stored ones (an order phase
    whose partition key changed moves partition: PostgreSQL re-routes it), the INSERT adds the new ones."""
    target = TARGETS[spec.name]
    identity = identity_columns(spec)
    columns = list(target.columns)
    table = changed_table(spec)
    update = None
    non_identity = [c for c in columns if c not in identity]
    if non_identity:
        assignments = ", ".join(f"{q(c)} = c.{q(c)}" for c in non_identity)
        match = " AND ".join(
            [f"t.{q(c)} = c.{q(c)}" for c in identity] + [f"t.{q(c)} = c.{q('_old_' + c)}" for c in target.key if c not in identity]
        )
        update = f"UPDATE {target.table} t SET {assignments} FROM {table} c WHERE c._stored AND {match}"
    insert = (
        f"INSERT INTO {target.table} ({', '.join(q(c) for c in columns)}) "
        f"SELECT {', '.join(q(c) for c in columns)} FROM {table} WHERE NOT _stored{_routing_order(target)}"
    )
    return update, insert


# Ids of orders / order phases whose derived-from values (creation time / event time) may have
# changed in this run: new, changed or deleted. An unchanged dependent sheet recomputes its
# derived columns for the rows that refer to them instead of being re-read and re-merged.
TOUCHED = {"OrdensFabrico": "touched_orders", "FasesOrdemFabrico": "touched_order_phases"}


def touched_ddl() -> list[str]:
    return [
        statement
        for table in TOUCHED.values()
        for statement in (f"DROP TABLE IF EXISTS {table}", f"CREATE TEMP TABLE {table} (id bigint) ON COMMIT DROP")
    ]


def touched_from_load_sql(spec: SheetSpec) -> str:
    """A first load touches every valid staged row."""
    return f"INSERT INTO {TOUCHED[spec.name]} SELECT {q(spec.key[0])} FROM {staging_table(spec)} WHERE _reject IS NULL"


def touched_from_changes_sql(spec: SheetSpec) -> str:
    """Changed or new rows of an incremental merge (for order phases: those whose event time differs)."""
    where = ' WHERE event_time IS DISTINCT FROM "_old_event_time"' if spec.name == "FasesOrdemFabrico" else ""
    return f"INSERT INTO {TOUCHED[spec.name]} SELECT id FROM {changed_table(spec)}{where}"


def derive_phase_event_times_sql() -> list[str]:
    """Order phases without start or end take their event time from their order's creation: recompute
    it for the phases of touched orders into derived_order_phases (id, old, new), changed ones only."""
    new = PHASE_EVENT_TIME.format(ended="t.ended_at", started="t.started_at", created="o.created_at", planned="t.planned_at")
    return [
        "DROP TABLE IF EXISTS derived_order_phases",
        "CREATE TEMP TABLE derived_order_phases ON COMMIT DROP AS SELECT id, old, new FROM ("
        f"SELECT t.id, t.event_time AS old, {new} AS new FROM orders_orderphase t "
        "LEFT JOIN orders_manufacturingorder o ON o.id = t.order_id "
        "WHERE t.ended_at IS NULL AND t.started_at IS NULL AND t.order_id IN (SELECT id FROM touched_orders)) x "
        "WHERE new IS DISTINCT FROM old",
        "ANALYZE derived_order_phases",
    ]


def apply_phase_event_times_sql() -> list[str]:
    """Move the recomputed phases (a partition-key UPDATE re-routes the row); they are touched in turn."""
    return [
        "UPDATE orders_orderphase t SET event_time = d.new FROM derived_order_phases d WHERE t.id = d.id AND t.event_time = d.old",
        "INSERT INTO touched_order_phases SELECT id FROM derived_order_phases",
    ]


def derive_error_event_times_sql() -> str:
    """Recompute the event time of the quality errors that refer to a touched order or order phase."""
    return (
        f"WITH derived AS (SELECT q.id, q.order_id, {ERROR_EVENT_TIME} AS new, q.event_time AS old "
        "FROM quality_qualityerror q "
        "LEFT JOIN orders_orderphase found ON found.id = q.found_order_phase_id "
        "LEFT JOIN orders_orderphase culprit ON culprit.id = q.culprit_order_phase_id "
        "LEFT JOIN orders_manufacturingorder o ON o.id = q.order_id "
        "WHERE q.order_id IN (SELECT id FROM touched_orders) "
        "OR q.found_order_phase_id IN (SELECT id FROM touched_order_phases) "
        "OR q.culprit_order_phase_id IN (SELECT id FROM touched_order_phases)) "
        "UPDATE quality_qualityerror q SET event_time = d.new FROM derived d "
        "WHERE q.id = d.id AND q.order_id = d.order_id AND d.new IS DISTINCT FROM d.old"
    )


def secondary_indexes_sql() -> str:
    """(name, definition) of a table's plain indexes: not the primary key, not unique (those enforce constraints)."""
    return (
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary ORDER BY 1"
    )


def recreate_index_sql(definition: str) -> str:
    """A partitioned table's index is defined ON ONLY the parent; re-created on the parent, it cascades to every partition."""
    return definition.replace(" ON ONLY ", " ON ", 1)


def _routing_order(target: Target) -> str:
    """Rows sorted by the partition key reach each monthly partition in one run (tuple routing stays put)."""
    if target.table != "orders_orderphase":
        return ""
    return f" ORDER BY {list(target.columns).index('event_time') + 1}"


# References checked for orphans after the merge: (kind, entity, table, column, target table, target column).
ORPHAN_CHECKS = [
    ("orphan_product", "OrdensFabrico.Of_ProdutoId", "orders_manufacturingorder", "product_id", "orders_product", "id"),
    ("orphan_phase", "OrdensFabrico.Of_FaseId", "orders_manufacturingorder", "current_phase_id", "orders_phase", "id"),
    ("orphan_order", "FasesOrdemFabrico.FaseOf_OfId", "orders_orderphase", "order_id", "orders_manufacturingorder", "id"),
    ("orphan_phase", "FasesOrdemFabrico.FaseOf_FaseId", "orders_orderphase", "phase_id", "orders_phase", "id"),
    ("orphan_order_phase", "FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FaseOfId", "orders_phaseassignment", "order_phase_id", "orders_orderphase", "id"),
    ("orphan_employee", "FuncionariosFaseOrdemFabrico.FuncionarioFaseOf_FuncionarioId", "orders_phaseassignment", "employee_id", "orders_employee", "id"),
    ("orphan_order", "OrdemFabricoErros.Erro_OfId", "quality_qualityerror", "order_id", "orders_manufacturingorder", "id"),
    ("orphan_phase", "OrdemFabricoErros.Erro_FaseAvaliacao", "quality_qualityerror", "found_phase_id", "orders_phase", "id"),
    ("orphan_order_phase", "OrdemFabricoErros.Erro_FaseOfAvaliacao", "quality_qualityerror", "found_order_phase_id", "orders_orderphase", "id"),
    ("orphan_order_phase", "OrdemFabricoErros.Erro_FaseOfCulpada", "quality_qualityerror", "culprit_order_phase_id", "orders_orderphase", "id"),
    ("orphan_employee", "FuncionariosFasesAptos.FuncionarioFase_FuncionarioId", "orders_employeeskill", "employee_id", "orders_employee", "id"),
    ("orphan_phase", "FuncionariosFasesAptos.FuncionarioFase_FaseId", "orders_employeeskill", "phase_id", "orders_phase", "id"),
    ("orphan_product", "FasesStandardModelos.ProdutoFase_ProdutoId", "orders_routestep", "product_id", "orders_product", "id"),
    ("orphan_phase", "FasesStandardModelos.ProdutoFase_FaseId", "orders_routestep", "phase_id", "orders_phase", "id"),
]
# Per-key issues (a steward can act on each) where the distinct orphans are few; sheet-wide otherwise.
PER_KEY_ENTITIES = {"OrdensFabrico.Of_ProdutoId", "OrdensFabrico.Of_FaseId", "FasesOrdemFabrico.FaseOf_FaseId"}


ORDER_PHASE_IDS = "orphan_check_order_phase_ids"


def order_phase_ids_sql() -> list[str]:
    """A narrow copy of the order-phase ids, read once for the three orphan checks that look them up."""
    return [
        f"DROP TABLE IF EXISTS {ORDER_PHASE_IDS}",
        f"CREATE TEMP TABLE {ORDER_PHASE_IDS} ON COMMIT DROP AS SELECT id AS value FROM orders_orderphase",
        f"ANALYZE {ORDER_PHASE_IDS}",
    ]


def _known_values(target_table: str, target_column: str) -> str:
    if target_table == "orders_orderphase":
        return f"SELECT value FROM {ORDER_PHASE_IDS}"  # ids are unique: no DISTINCT needed
    return f"SELECT DISTINCT {target_column} AS value FROM {target_table}"


def orphan_summary_sql(table: str, column: str, target_table: str, target_column: str) -> str:
    """Distinct values, matched distinct values, orphan rows, a sample of orphans and rows (prodplan.gates.MATCH_RATE_RULE)."""
    return reference_match_sql(table=table, column=column, known_values_sql=_known_values(target_table, target_column))


def orphan_keys_sql(table: str, column: str, target_table: str, target_column: str) -> str:
    return (
        f"SELECT t.{column}, count(*) FROM {table} t LEFT JOIN ({_known_values(target_table, target_column)}) x "
        f"ON x.value = t.{column} WHERE t.{column} IS NOT NULL AND x.value IS NULL GROUP BY t.{column}"
    )


assert set(TARGETS) == set(SHEETS_BY_NAME)


@contextlib.contextmanager
def local_setting(cursor, name: str, value: str):
    """A server setting changed for the statements inside (transaction-local), then put back for the rest of the run."""
    cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
    previous = cursor.fetchone()[0]
    yield
    cursor.execute("SELECT set_config(%s, %s, true)", [name, previous])
