"""Stage: COPY each changed sheet into its staging table, validate set-wise, record the rejects."""

from __future__ import annotations

import hashlib
import time

from django.db import connection

from ingestion.contract import SHEETS, SHEETS_BY_NAME
from ingestion.models import IngestionRun, SheetRun
from ingestion.pipeline.progress import Progress, log_step
from ingestion.pipeline.sql import (
    copy_columns,
    copy_types,
    q,
    reject_record_sql,
    staging_ddl,
    staging_table,
    validation_sql,
)
from ingestion.reader import (
    WorkbookReader,
)
from prodplan import metrics

PROGRESS_EVERY_ROWS = 20_000


# Parsed ahead in a background thread, one at a time, in this order; small sheets are parsed inline.
PREFETCHED_SHEETS = ("FasesOrdemFabrico", "FuncionariosFaseOrdemFabrico", "OrdemFabricoErros")


def stage_all(
    run: IngestionRun, reader: WorkbookReader, progress: Progress, timings: dict, skip: set[str]
) -> dict[str, SheetRun]:
    """COPY every changed sheet into its staging table, validate set-wise, record rejects."""
    sheet_runs: dict[str, SheetRun] = {}
    raw_cursor = connection.cursor()
    cursor = raw_cursor.cursor  # the psycopg 3 cursor, for COPY
    to_read = [spec for spec in SHEETS if spec.name not in skip]
    for spec in SHEETS:
        if spec.name in skip:
            sheet_runs[spec.name] = SheetRun.objects.create(
                run=run, sheet=spec.name, sha256=run.sheet_sha256[spec.name], skipped=True
            )
            progress.update(spec.name, 0, 0, time.perf_counter(), stage="unchanged")
    big = [SHEETS_BY_NAME[name] for name in PREFETCHED_SHEETS if name not in skip]
    for spec in to_read:
        step = time.perf_counter()
        if spec in big and big.index(spec) + 1 < len(big):
            reader.prefetch(big[big.index(spec) + 1])  # parse the next big sheet while this one is coerced and copied
        # ON COMMIT DROP cleans up a committed run; a run nested in an outer transaction (tests, re-validation) reuses the name.
        raw_cursor.execute(f"DROP TABLE IF EXISTS {staging_table(spec)}")
        raw_cursor.execute(staging_ddl(spec))
        rows_read = 0
        columns = copy_columns(spec)
        keyless = not spec.key
        copy_sql = f"COPY {staging_table(spec)} ({', '.join(q(c) for c in columns)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(copy_sql) as copy:
            copy.set_types(copy_types(spec))
            write = copy.write_row
            for row_number, values, error in reader.rows(spec):
                rows_read += 1
                if error is None:
                    record = [row_number, None, None, None, None, *values]
                else:
                    record = [row_number, error[0], error[1], error[2], error[3], *values]
                if keyless:
                    record.append(hashlib.sha256(repr(values).encode()).hexdigest())
                write(record)
                if rows_read % PROGRESS_EVERY_ROWS == 0:
                    progress.update(spec.name, rows_read, reader.sheet_height(spec), step)
        progress.update(spec.name, rows_read, reader.sheet_height(spec), step, stage="validating")
        table = staging_table(spec)
        # Statistics for the validation and the merge's joins. No index on the staged keys: every later
        # statement joining them (shrink guard, changed rows, vanished rows) is a hash join over all rows.
        raw_cursor.execute(f"ANALYZE {table}")
        for statement in validation_sql(spec):
            raw_cursor.execute(statement)
        rejected = record_rejects(raw_cursor, spec, run)
        raw_cursor.execute(f"SELECT _reject, count(*) FROM {table} WHERE _reject IS NOT NULL GROUP BY 1")
        for reason, count in raw_cursor.fetchall():
            metrics.REJECTS.labels(sheet=spec.name, reason=reason).inc(count)
        sheet_runs[spec.name] = SheetRun.objects.create(
            run=run, sheet=spec.name, sha256=run.sheet_sha256[spec.name], rows_read=rows_read,
            rows_rejected=rejected, rows_loaded=rows_read - rejected, seconds=round(time.perf_counter() - step, 3),
        )
        timings[f"stage:{spec.name}"] = round(time.perf_counter() - step, 3)
        log_step(run, "staged", sheet=spec.name, rows=rows_read, rejected=rejected, seconds=timings[f"stage:{spec.name}"])
    raw_cursor.close()
    return sheet_runs


def record_rejects(cursor, spec, run: IngestionRun) -> int:
    """The sheet's rejects by identity: met again (reused with its decision), new, or superseded; returns the rows rejected."""
    counts = {}
    for name, statement in reject_record_sql(spec):
        cursor.execute(statement, [run.pk] * statement.replace("%%", "").count("%s"))
        counts[name] = cursor.rowcount
    log_step(run, "rejects", sheet=spec.name, new=counts["inserted"], met_again=counts["reused"] + counts["resolved_met"],
             superseded=counts["superseded"])
    return counts["met"]
