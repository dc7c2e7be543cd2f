"""Release-gate check of the ingestion domain (prodplan.checks.release_checks): the last run stored the workbook."""

from __future__ import annotations

from django.core.checks import Error, Info

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun
from prodplan.checks import TAG, release_checks


@release_checks.register(TAG)
def check_last_ingestion(app_configs=None, **kwargs):
    last = IngestionRun.objects.exclude(status__in=[RunStatus.NOOP, RunStatus.PENDING]).order_by("-id").first()
    if last is None:
        return [Error("no workbook has been ingested", hint="Run: manage.py ingest PATH/Folha_IA.xlsx", id="prodplan.E030")]
    if last.status != RunStatus.SUCCEEDED:
        return [Error(f"the last ingestion (run {last.pk}) {last.status}: {last.error[:300]}",
                      hint="Fix the workbook or the cause named, then ingest again.", id="prodplan.E031")]
    unreconciled = list(last.sheets.filter(reconciled=False).values_list("sheet", flat=True))
    if unreconciled:
        return [Error(f"run {last.pk}: counts not reconciled for {', '.join(unreconciled)}",
                      hint="Ingest again; if it persists, report the workbook.", id="prodplan.E032")]
    return [Info(f"last ingestion: run {last.pk}, as of {last.as_of:%Y-%m-%d %H:%M}", id="prodplan.I030")]
