"""Partition maintenance of orders' order phases: monthly partitions from the oldest data month to N months ahead."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import connection
from psqlextra.partitioning import PostgresPartitioningManager, PostgresTimePartitionSize
from psqlextra.partitioning.config import PostgresPartitioningConfig
from psqlextra.partitioning.constants import AUTO_PARTITIONED_COMMENT
from psqlextra.partitioning.range_strategy import PostgresRangePartitioningStrategy
from psqlextra.partitioning.time_partition import PostgresTimePartition

from orders.models import OrderPhase

MONTH = PostgresTimePartitionSize(months=1)


def month_start(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def oldest_stored_month(table: str) -> datetime | None:
    """The first month holding rows, read from the partition bounds' data (cheap: min over an index)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(event_time) FROM {table}")  # noqa: S608 - table name is ours
        row = cursor.fetchone()
    return row[0] if row and row[0] else None


def month_partitions(first: datetime, last: datetime) -> list[PostgresTimePartition]:
    """Monthly partitions covering [first, last] (inclusive of last's month)."""
    current, end = month_start(first), month_start(last)
    partitions = []
    while current <= end:
        partitions.append(PostgresTimePartition(size=MONTH, start_datetime=current))
        current += relativedelta(months=1)
    return partitions


class DataMonthsStrategy(PostgresRangePartitioningStrategy):
    """Create one partition per month from the oldest stored month (or now) to now + N months.

    Never deletes: the factory's history is kept."""

    def __init__(self, table: str):
        self.table = table

    def to_create(self) -> Generator[PostgresTimePartition, None, None]:
        now = datetime.now(UTC)
        first = oldest_stored_month(self.table) or now
        yield from month_partitions(min(first, now), now + relativedelta(months=settings.PARTITION_MONTHS_AHEAD))

    def to_delete(self) -> Generator[PostgresTimePartition, None, None]:
        return
        yield


# psqlextra's pgpartition reads it (settings.PSQLEXTRA_PARTITIONING_MANAGER) once apps are ready.
manager = PostgresPartitioningManager(
    [PostgresPartitioningConfig(model=OrderPhase, strategy=DataMonthsStrategy(OrderPhase._meta.db_table))]
)


def ensure_order_phase_partitions(first: datetime, last: datetime) -> list[str]:
    """Create any missing monthly order-phase partitions covering [first, last]; returns the names created.

    Called inside the ingestion transaction before rows are merged, so no row of a known
    month lands in the default partition (which would block creating that month later)."""
    with connection.cursor() as cursor:
        table = connection.introspection.get_partitioned_table(cursor, OrderPhase._meta.db_table)
    created = []
    wanted = month_partitions(first, last)
    missing = [p for p in wanted if not table.partition_by_name(name=p.name())]
    if missing:
        with connection.schema_editor(atomic=False) as schema_editor:
            for partition in missing:
                partition.create(OrderPhase, schema_editor, comment=AUTO_PARTITIONED_COMMENT)
                created.append(partition.name())
    return created


def partition_health() -> dict:
    """Which monthly partitions exist, which stored months lack one, and how far ahead they reach."""
    table_name = OrderPhase._meta.db_table
    with connection.cursor() as cursor:
        table = connection.introspection.get_partitioned_table(cursor, table_name)
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', event_time AT TIME ZONE 'UTC') FROM {table_name}"  # noqa: S608
        )
        stored_months = sorted(row[0] for row in cursor.fetchall())
    names = {p.name for p in (table.partitions if table else [])}
    # psqlextra's introspection names partitions without the table prefix ("2024_jan", "default").
    missing_stored = [m.strftime("%Y-%m") for m in stored_months if m.strftime("%Y_%b").lower() not in names]
    now = datetime.now(UTC)
    ahead = month_partitions(now, now + relativedelta(months=settings.PARTITION_MONTHS_AHEAD))
    missing_ahead = [p.start_datetime.strftime("%Y-%m") for p in ahead if p.name() not in names]
    return {
        "table": table_name,
        "partitions": len(names),
        "has_default": "default" in names,
        "stored_months": len(stored_months),
        "missing_for_stored_months": missing_stored,
        "missing_ahead": missing_ahead,
        "ok": not missing_stored and not missing_ahead,
    }
