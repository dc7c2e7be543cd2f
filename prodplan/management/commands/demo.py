"""manage.py demo: migrate, partition, generate and ingest a demo workbook, create demo users, serve."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError, call_command


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
        workbook = Path(options["workbook"])
        call_command("migrate", "--noinput", verbosity=0)
        call_command("pgpartition", "--yes", verbosity=0)
        self.stdout.write(f"database ready ({'embedded PostgreSQL' if settings.EMBEDDED_DATABASE else 'DATABASE_URL'})")
        if not workbook.exists():
            if options["no_generate"]:
                raise CommandError(f"workbook not found: {workbook}")
            workbook.parent.mkdir(parents=True, exist_ok=True)
            self.stdout.write(f"generating demo workbook {workbook} (scale {options['scale']})")
            call_command(
                "make_demo_workbook", str(workbook), scale=options["scale"], seed=options["seed"], as_of=options["as_of"]
            )
        call_command("ingest", str(workbook))
        call_command("create_demo_users")
        if not options["no_train"]:
            from mlops.tasks import train_all_models_task

            self.stdout.write("training the lead-time and risk models (the nightly job; about 15 s at the demo scale)")
            train_all_models_task()
        # The what-if page shows the simulator's backtest next to every scenario: give it one.
        call_command("whatif_backtest")
        if options["no_serve"]:
            return
        address = f"{options['host']}:{options['port']}"
        self.stdout.write(self.style.SUCCESS(f"serving on http://{address}/  (login: supervisor / steward / admin, password: demo-pass-2025)"))
        os.environ.setdefault("DJANGO_DEBUG", "1")
        call_command("runserver", address, use_reloader=False, insecure_serving=True)
