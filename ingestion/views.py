"""Ingestion page: upload a workbook, watch per-sheet progress (HTMX polling, 286 when done), read the run report."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from ingestion import labels
from ingestion.choices import RunStatus, RunTrigger
from ingestion.contract import SHEETS
from ingestion.models import IngestionRun
from ingestion.selectors import freshness, recent_runs, run_progress, run_report
from ingestion.services import (
    AlreadyRunning,
    ingestion_enqueue,
    ingestion_start,
    runs_fail_dead,
)
from ingestion.tasks import ingest_run_task
from ingestion.uploads import UploadRejected
from prodplan.roles import can_ingest
from prodplan.task_queue import QueueUnavailable

logger = logging.getLogger(__name__)

RECENT_RUNS = 15
POLL_DONE = 286  # htmx stops polling on this status
RUN_DONE_EVENT = "ingestion-run-done"  # HX-Trigger of the poll answer that sees a run finish: the chip reloads
FINISHED = (RunStatus.SUCCEEDED, RunStatus.NOOP, RunStatus.FAILED)


def _run_eagerly_in_background(run_id: int) -> None:
    """Without a broker (eager Celery) the task would block the upload request: run it in a thread instead,
    so the page can poll real progress. With Redis the worker runs it."""

    def target() -> None:
        try:
            ingest_run_task.apply(args=[run_id])
        except Exception:
            logger.exception("background ingestion failed", extra={"run_id": run_id})
        finally:
            connection.close()

    threading.Thread(target=target, name=f"ingest-run-{run_id}", daemon=True).start()


def start_run(run_id: int) -> None:
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        _run_eagerly_in_background(run_id)
        return
    try:
        ingestion_enqueue(run_id=run_id)
    except QueueUnavailable:
        pass  # the run is now failed with the reason, which its progress panel shows


def _progress_rows(run: IngestionRun) -> list[dict]:
    """One row per contract sheet: rows done / total and the stage (from the live progress, else the stored one)."""
    progress = run_progress(run)
    finished = run.status in FINISHED
    rows = []
    for spec in SHEETS:
        state = progress.get(spec.name) or {}
        total, done = state.get("total") or 0, state.get("rows") or 0
        share = (done / total) if total else (1.0 if finished and run.status != RunStatus.FAILED else 0.0)
        stage = state.get("stage") or ("" if not finished else run.status)
        if run.status == RunStatus.FAILED:
            stage = RunStatus.FAILED  # one transaction: a failed run stored nothing, whatever stage a sheet reached
        rows.append({"sheet": spec.name, "rows": done, "total": total, "percent": int(round(min(share, 1.0) * 100)),
                     "stage": stage, "eta_s": state.get("eta_s")})
    return rows


def can_open_reject_admin(user) -> bool:
    """Links into the admin's reject triage only for users the admin lets in (staff with the view permission):
    a supervisor sees the counts on the page, not a link that ends in a login form."""
    return bool(user.is_authenticated and user.is_staff and user.has_perm("ingestion.view_reject"))


def _progress_context(run: IngestionRun, user=None) -> dict:
    rows = _progress_rows(run)
    overall = int(sum(r["percent"] for r in rows) / len(rows)) if rows else 0
    done = run.status in FINISHED
    return {"run": run, "rows": rows, "overall": 100 if done and run.status != RunStatus.FAILED else overall, "done": done,
            "admin_links": can_open_reject_admin(user) if user is not None else False}


@login_required
@require_http_methods(["GET", "POST"])
def ingestion_page(request):
    """GET: the upload form and recent runs. POST: store the upload, queue the run, answer its progress."""
    if request.method == "POST":
        return _upload(request)
    return render(request, "ingestion/ingestion.html", {
        "runs": recent_runs(limit=RECENT_RUNS),
        "freshness": freshness(),
        "can_ingest": can_ingest(request.user),
        "admin_links": can_open_reject_admin(request.user),
        "as_of": None,
    })


@login_required
@require_GET
def freshness_chip(request):
    """The freshness chip alone (HTMX): reloaded when a run ends and every minute."""
    return render(request, "ingestion/partials/_freshness.html", {"freshness": freshness()})


def _upload(request):
    if not can_ingest(request.user):
        raise PermissionDenied(_("Uploading a workbook needs the data steward role or staff."))
    uploaded = request.FILES.get("workbook")
    error = None
    run = None
    if uploaded is None:
        error = _("Choose a workbook (.xlsx) to upload.")
    else:
        try:
            run = ingestion_start(trigger=RunTrigger.UI, uploaded=uploaded, allow_shrink=request.POST.get("allow_shrink") == "on")
        except UploadRejected as exc:
            error = labels.upload_error(str(exc))  # the stored English reason (also the API's), in the page's language
        except AlreadyRunning as exc:
            error = _("Another ingestion is already running (run %(id)s).") % {"id": exc.run_id}
    if error:
        status = 200 if request.htmx else 400  # htmx swaps only 2xx answers
        return render(request, "ingestion/partials/_upload_error.html", {"error": error}, status=status)
    run_id = run.pk
    transaction.on_commit(lambda: start_run(run_id))
    run.refresh_from_db()
    if request.htmx:
        return render(request, "ingestion/partials/_progress.html", _progress_context(run, request.user))
    return redirect("ingestion-run", run_id=run_id)


@login_required
@require_GET
def ingestion_run(request, run_id: int):
    """One run: live progress while it runs (HTMX ?poll=1 answers 286 when finished), then its report."""
    runs_fail_dead()  # a run whose worker died reads "failed", not "running" forever
    run = get_object_or_404(IngestionRun, pk=run_id)
    context = _progress_context(run, request.user)
    if request.htmx and request.GET.get("poll"):
        response = render(request, "ingestion/partials/_progress.html", context)
        if context["done"]:
            response.status_code = POLL_DONE
            response["HX-Trigger"] = RUN_DONE_EVENT  # the freshness chip reloads
        return response
    if request.htmx and request.GET.get("widget") == "report":
        return render(request, "ingestion/partials/_report.html", {"report": run_report(run),
                                                                    "admin_links": context["admin_links"]})
    return render(request, "ingestion/run.html", {**context, "report": run_report(run) if context["done"] else None,
                                                  "as_of": run.as_of})
