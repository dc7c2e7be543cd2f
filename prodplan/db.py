"""Small database expressions shared by the models."""

from django.db.models import BigIntegerField, Func, Value


class NextVal(Func):
    """nextval('<sequence>'): a surrogate id for partitioned tables (identity columns need PostgreSQL 17)."""

    function = "nextval"
    output_field = BigIntegerField()

    def __init__(self, sequence: str):
        super().__init__(Value(sequence))

    def deconstruct(self):
        return "prodplan.db.NextVal", (self.source_expressions[0].value,), {}
