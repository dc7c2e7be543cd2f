"""manage.py make_demo_workbook: write a demo workbook with the contract's shape, quirks and planted rejects."""

from __future__ import annotations

import hashlib
import time

from django.core.management.base import BaseCommand, CommandError

from ingestion.demo import GATE_FACTOR_RANGE, GATE_PHASE, generate_demo_workbook, manifest_path


class Command(BaseCommand):
    help = "Write a demo Folha_IA-shaped workbook (OUT.xlsx) and its manifest (OUT.manifest.json)."

    def add_arguments(self, parser):
        parser.add_argument("out", help="Path of the .xlsx to write")
        parser.add_argument("--scale", type=float, default=1.0, help="1.0 = the real file's row counts")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--as-of", dest="as_of", default="2025-12-15",
                            help="Snapshot date or datetime (a date means the end of that day)")
        parser.add_argument("--started-phase-rows-only", dest="started_phase_rows_only", action="store_true",
                            help="The other export shape: FasesOrdemFabrico holds a phase row only once work on it "
                                 "has started (no row with both FaseOf_Inicio and FaseOf_Fim empty)")
        low, high = GATE_FACTOR_RANGE
        parser.add_argument("--gate-capacity-factor", dest="gate_capacity_factor", type=float, default=None,
                            metavar="F",
                            help=f"Capacity knob of the gate phase ({GATE_PHASE}, the bottleneck): multiply its "
                                 f"capacity by F ({low}..{high}) from --gate-capacity-from on; two workbooks of one "
                                 "seed that differ only in F hold the same events before that date. Needs "
                                 "--gate-capacity-from")
        parser.add_argument("--gate-capacity-from", dest="gate_capacity_from", default=None, metavar="YYYY-MM-DD",
                            help="First day of the changed gate capacity (inside the history, on or before the "
                                 "as-of day). Needs --gate-capacity-factor")

    def handle(self, *args, out, scale, seed, as_of, started_phase_rows_only=False, gate_capacity_factor=None,
               gate_capacity_from=None, **options):
        if not out.lower().endswith(".xlsx"):
            raise CommandError("OUT must be an .xlsx path")
        began = time.perf_counter()
        try:
            manifest = generate_demo_workbook(out, scale=scale, seed=seed, as_of=as_of,
                                              started_phase_rows_only=started_phase_rows_only,
                                              gate_capacity_factor=gate_capacity_factor,
                                              gate_capacity_from=gate_capacity_from)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        seconds = time.perf_counter() - began
        for sheet, info in manifest["sheets"].items():
            planted = sum(len(rows) for rows in info["planted_rejects"].values())
            self.stdout.write(f"{sheet:32} {info['rows']:>9,} rows  {planted} planted rejects")
        if started_phase_rows_only:
            self.stdout.write(f"Started phase rows only: {manifest['not_started_phase_rows_dropped']:,} not-started "
                              "phase rows left out")
        if "gate_capacity" in manifest:
            gate = manifest["gate_capacity"]
            self.stdout.write(f"Gate capacity: {gate['phase']} (phase {gate['phase_id']}) x{gate['factor']} from "
                              f"{gate['from']}")
        for name, figure in manifest["planted_rates"].items():
            self.stdout.write(f"{name}: {figure['achieved']:.3f} (target {figure['target']:.3f})")
        digest = hashlib.sha256()
        with open(out, "rb") as written:
            for block in iter(lambda: written.read(1 << 20), b""):
                digest.update(block)
        self.stdout.write(f"sha256 {digest.hexdigest()} (same arguments, same bytes)")
        self.stdout.write(self.style.SUCCESS(f"Wrote {out} and {manifest_path(out)} in {seconds:.1f} s"))
