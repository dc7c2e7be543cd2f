"""Fixtures of the ingestion tests."""

import pytest
from django.db import connection

DOMAIN_TABLES = [
    "orders_phase", "orders_product", "orders_routestep", "orders_employee", "orders_employeeskill",
    "orders_manufacturingorder", "orders_orderphase", "orders_phaseassignment", "quality_qualityerror",
]


@pytest.fixture
def empty_tables(db):
    """Start from empty domain and audit tables (inside the test transaction: the rollback restores them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE " + ", ".join(DOMAIN_TABLES) + ", ingestion_reject, ingestion_sheetrun, ingestion_dataqualityissue, "
            "ingestion_ingestionrun CASCADE"
        )
