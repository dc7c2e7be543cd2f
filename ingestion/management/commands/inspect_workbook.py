"""manage.py inspect_workbook: data dictionary, profile and reference match rates of any workbook."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ingestion.inspector import WorkbookUnreadable, profile_workbook, write_reports


class Command(BaseCommand):
    help = "Profile a workbook in one streaming pass per sheet; writes <name>.dictionary.md, .profile.json, .relationships.json."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Workbook to inspect (.xlsx, .xls, .ods)")
        parser.add_argument("--out", default=None, help="Folder for the reports (default: beside the workbook)")

    def handle(self, *args, path, out, **options):
        workbook = Path(path)
        if not workbook.is_file():
            raise CommandError(f"{workbook} does not exist")
        began = time.perf_counter()
        try:
            profile = profile_workbook(workbook)
        except WorkbookUnreadable as exc:
            raise CommandError(str(exc)) from exc
        paths = write_reports(profile, out or workbook.parent)
        seconds = time.perf_counter() - began
        for sheet in profile["missing_sheets"]:
            self.stdout.write(self.style.ERROR(f"Missing sheet: {sheet}"))
        for sheet, headers in profile["missing_headers"].items():
            self.stdout.write(self.style.ERROR(f"Missing headers in {sheet}: {', '.join(headers)}"))
        for sheet in profile["extra_sheets"]:
            self.stdout.write(self.style.WARNING(f"Extra sheet (not in the contract): {sheet}"))
        for sheet, headers in profile["extra_columns"].items():
            self.stdout.write(self.style.WARNING(f"Extra columns in {sheet}: {', '.join(headers)}"))
        for name, sheet in profile["sheets"].items():
            self.stdout.write(f"{name:32} {sheet['rows']:>9,} rows")
        for rel in profile["relationships"]:
            rate = "missing" if rel["match_rate"] is None else f"{rel['match_rate'] * 100:.1f}%"
            self.stdout.write(f"{rel['source']} -> {rel['target']}: {rate}")
        for kind, report in paths.items():
            self.stdout.write(f"{kind}: {report}")
        self.stdout.write(self.style.SUCCESS(f"Inspected {workbook.name} in {seconds:.1f} s"))
