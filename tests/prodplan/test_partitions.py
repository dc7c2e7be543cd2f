"""Partitioned tables and their partitions exist after migrate (pg_inherits)."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection

from orders.partitioning import ensure_order_phase_partitions, partition_health

pytestmark = pytest.mark.django_db


def partitions_of(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY 1",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def test_tables_are_partitioned():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'p' AND relname IN "
            "('orders_orderphase', 'orders_phaseassignment', 'quality_qualityerror') ORDER BY 1"
        )
        assert [r[0] for r in cursor.fetchall()] == ["orders_orderphase", "orders_phaseassignment", "quality_qualityerror"]


def test_hash_partitions_exist():
    assert len(partitions_of("orders_phaseassignment")) == 8
    assert len(partitions_of("quality_qualityerror")) == 8


def test_pgpartition_creates_months_ahead_and_default():
    call_command("pgpartition", "--yes")
    names = partitions_of("orders_orderphase")
    assert "orders_orderphase_default" in names
    health = partition_health()
    assert health["missing_ahead"] == []
    assert health["has_default"]


def test_ensure_partitions_for_old_data_months():
    created = ensure_order_phase_partitions(datetime(2021, 1, 5, tzinfo=UTC), datetime(2021, 3, 9, tzinfo=UTC))
    assert created == ["2021_jan", "2021_feb", "2021_mar"]
    assert ensure_order_phase_partitions(datetime(2021, 1, 5, tzinfo=UTC), datetime(2021, 3, 9, tzinfo=UTC)) == []
    assert {"orders_orderphase_2021_jan", "orders_orderphase_2021_mar"} <= set(partitions_of("orders_orderphase"))
