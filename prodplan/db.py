"""Small database helpers: expressions shared by the models, and prepared statements for hot lookups."""

from decimal import Decimal

import psycopg
from django.db import connection
from django.db.models import BigIntegerField, Func, Value


class NextVal(Func):
    """nextval('<sequence>'): a surrogate id for partitioned tables (identity columns need PostgreSQL 17)."""

    function = "nextval"
    output_field = BigIntegerField()

    def __init__(self, sequence: str):
        super().__init__(Value(sequence))

    def deconstruct(self):
        return "prodplan.db.NextVal", (self.source_expressions[0].value,), {}


def fetch_prepared(sql: str, params) -> list[dict]:
    """Rows (as dicts) of a statement run as a server-side prepared statement on Django's connection.

    For per-entity lookups over the partitioned tables: planning a query that touches every monthly
    partition costs ~4.5 ms per execution, running it ~2 ms; a prepared statement is planned once per
    connection (PostgreSQL switches to a generic plan after five executions). Django's own cursors bind
    parameters client-side, so they never prepare. NUMERIC values come back as float."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        names = [column.name for column in cursor.description]
        return [
            {name: float(value) if isinstance(value, Decimal) else value for name, value in zip(names, row, strict=True)}
            for row in cursor.fetchall()
        ]
