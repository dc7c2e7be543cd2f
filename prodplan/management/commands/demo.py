"""manage.py demo: migrate, partition, generate and ingest a demo workbook, create demo users, serve."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management import BaseCommand, call_command

from prodplan.demo import demo_steps


class Command(BaseCommand):
    help = "Set up the database, load a workbook (generating a demo one if missing) and serve the dashboards."

    def add_arguments(self, parser):
        parser.add_argument("--workbook", required=True, help="Workbook to ingest (generated if missing, unless --no-generate).")
        parser.add_argument("--scale", type=float, default=0.05)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--as-of", default="2025-12-15")
        parser.add_argument("--no-generate", action="store_true", help="Fail if the workbook does not exist.")
        parser.add_argument("--no-serve", action="store_true", help="Set up and load, then exit.")
        parser.add_argument("--no-train", action="store_true", help="Skip training the lead-time and risk models.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, **options):
        call_command("migrate", "--noinput", verbosity=0)
        call_command("pgpartition", "--yes", verbosity=0)
        self.stdout.write(f"database ready ({'embedded PostgreSQL' if settings.EMBEDDED_DATABASE else 'DATABASE_URL'})")
        call_command("create_demo_users")
        # The domain's steps (ingestion: generate and load the workbook; mlops: train; whatif: backtest),
        # registered by each app in its AppConfig.ready().
        for _name, step in demo_steps():
            step(options, self.stdout.write)
        if options["no_serve"]:
            return
        address = f"{options['host']}:{options['port']}"
        self.stdout.write(self.style.SUCCESS(f"serving on http://{address}/  (login: supervisor / steward / admin, password: demo-pass-2025)"))
        os.environ.setdefault("DJANGO_DEBUG", "1")
        call_command("runserver", address, use_reloader=False, insecure_serving=True)
