"""manage.py explain_hot_queries: EXPLAIN (ANALYZE, BUFFERS) of the SQL behind the hot endpoints, into docs/perf/."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import CommandError
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from prodplan.commands import DatabaseCommand

HOT_ENDPOINTS = {
    "orders_list": "/api/prodplan/orders",
    "order_detail": "/api/prodplan/orders/{order_id}",
    "schedule_current": "/api/prodplan/schedule/current",
    "kpi_overview": "/api/kpis/overview",
    "quality_overview": "/api/quality/overview",
}
SKIP = ("SAVEPOINT", "RELEASE", "django_session", "prodplan_apikey", "prodplan_dataversion", "ingestion_ingestionrun")


class Command(DatabaseCommand):
    help = "Capture the queries each hot endpoint runs (cache off) and write their plans to docs/perf/<endpoint>.txt."

    def add_arguments(self, parser):
        parser.add_argument("--out", default=str(settings.BASE_DIR / "docs" / "perf"))

    def handle(self, *args, out: str, **options):
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM orders_manufacturingorder ORDER BY id DESC LIMIT 1")
            row = cursor.fetchone()
        if row is None:
            raise CommandError("no orders stored: ingest a workbook first (the plans must reflect real data)")
        client = Client()
        for name, template in HOT_ENDPOINTS.items():
            url = template.format(order_id=row[0])
            # An operator's tool on this machine: reads are opened for its own requests (no credentials to query).
            with override_settings(CACHE_ENABLED=False, PUBLIC_READS=True), CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
            sections = [f"# {name}: GET {url}", f"# {len(captured.captured_queries)} queries", ""]
            for index, query in enumerate(captured.captured_queries, 1):
                sql = query["sql"]
                if not sql.lstrip().upper().startswith(("SELECT", "WITH")) or any(s in sql for s in SKIP):
                    continue
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                    plan = "\n".join(r[0] for r in cursor.fetchall())
                sections += [f"## query {index} ({query['time']} s when captured)", sql, "", plan, ""]
            (out_dir / f"{name}.txt").write_text("\n".join(sections))
            self.stdout.write(f"{name}: {len(captured.captured_queries)} queries -> {out_dir / (name + '.txt')}")
