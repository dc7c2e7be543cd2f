"""Supervisor page of the what-if simulator: scenario form, run with progress, baseline vs scenario, backtest, past runs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from orders.choices import ProductFamily
from orders.selectors import phase_choices
from prodplan.asof import data_as_of, resolve_as_of
from prodplan.pages import chart
from prodplan.params import id_param, id_params
from prodplan.roles import can_run_whatif
from prodplan.task_queue import QueueUnavailable
from whatif.choices import PriorityRule, RunStatus
from whatif.models import WhatIfRun
from whatif.selectors import latest_backtest, moving_orders, run_list, scenario_changes, station_overview
from whatif.services import canonical_inputs, whatif_run_request
from whatif.validation import clean_form

OVERRIDE_ROWS = 3
PAST_RUNS = 20
# (key in the engine's KPIs, label, higher is better)
KPI_ROWS = (
    ("orders_finished", gettext_lazy("Orders finished in the horizon"), True),
    ("mean_throughput_per_week", gettext_lazy("Throughput per week"), True),
    ("mean_remaining_lead_time_days", gettext_lazy("Mean remaining lead time of WIP (days)"), False),
    ("p90_remaining_lead_time_days", gettext_lazy("p90 remaining lead time of WIP (days)"), False),
    ("mean_lead_time_arrivals_days", gettext_lazy("Mean lead time of new orders (days)"), False),
    ("median_lead_time_finished_days", gettext_lazy("Median lead time of orders finished (days)"), False),
    ("mean_flow_time_days", gettext_lazy("Mean flow time in the horizon (days)"), False),
    ("wip_at_horizon_end", gettext_lazy("WIP at the end of the horizon"), False),
    ("mean_queue_wait_days_overall", gettext_lazy("Mean queue wait (days)"), False),
)
POLL_DONE = 286  # htmx stops polling on this status
RUN_DONE_EVENT = "whatif-run-done"  # HX-Trigger of an answer showing a finished run: the past runs list reloads


def _kpi_table(outputs: dict) -> list[dict]:
    base, scen, deltas = outputs["baseline"], outputs["scenario"], outputs["deltas"]
    rows = []
    for key, label, higher_better in KPI_ROWS:
        delta = deltas.get(key)
        good = None
        if isinstance(delta, int | float) and delta:
            good = (delta > 0) == higher_better
        rows.append({"key": key, "label": label, "baseline": base.get(key), "scenario": scen.get(key),
                     "delta": delta, "good": good})
    return rows


def _past_runs(names: dict[int, str] | None = None) -> list[dict]:
    """The newest runs, each with what its scenario changed in words (phase names, stations before → after)."""
    names = dict(phase_choices()) if names is None else names
    return [{"run": r, "changes": scenario_changes(r, names)} for r in run_list()[:PAST_RUNS]]


def _run_context(run: WhatIfRun, names: dict[int, str] | None = None) -> dict:
    names = dict(phase_choices()) if names is None else names
    context = {"run": run, "done": run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED),
               "changes": scenario_changes(run, names),
               "status_label": RunStatus(run.status).label if run.status in RunStatus.values else run.status}
    outputs = run.outputs if run.status == RunStatus.SUCCEEDED else None
    if outputs:
        weeks = list(range(1, len(outputs["baseline"]["throughput_per_week"]) + 1))
        context.update({
            "outputs": outputs,
            "kpis": _kpi_table(outputs),
            "moving": moving_orders(run),
            "config": chart("line", [_("week %(n)s") % {"n": w} for w in weeks], [
                {"label": _("Baseline"), "data": outputs["baseline"]["throughput_per_week"], "borderColor": "#5b6473",
                 "backgroundColor": "#5b6473"},
                {"label": _("Scenario"), "data": outputs["scenario"]["throughput_per_week"], "borderColor": "#0b5cad",
                 "backgroundColor": "#0b5cad"},
            ], scales={"y": {"beginAtZero": True, "title": {"display": True, "text": _("orders finished per week")}}}),
        })
    return context


def _backtest_context() -> dict:
    backtest = latest_backtest()
    if backtest is None:
        return {"backtest": None}
    weeks = [_("week %(n)s") % {"n": w} for w in range(1, backtest.weeks + 1)]
    return {"backtest": backtest, "backtest_config": chart("bar", weeks, [
        {"label": _("Real completions"), "data": backtest.actual_weekly, "backgroundColor": "#9bb8e0"},
        {"type": "line", "label": _("Simulated (baseline)"), "data": backtest.simulated_weekly, "borderColor": "#c0392b",
         "backgroundColor": "#c0392b"},
    ], scales={"y": {"beginAtZero": True}})}


DAY_LABELS = dict(zip(range(1, 8), (gettext_lazy("Mon"), gettext_lazy("Tue"), gettext_lazy("Wed"), gettext_lazy("Thu"),
                                     gettext_lazy("Fri"), gettext_lazy("Sat"), gettext_lazy("Sun")), strict=True))


def _stations_context() -> dict:
    """Current stations per phase (with +1 / -1 controls) and the working calendar, at the data's as-of."""
    as_of = data_as_of()
    if as_of is None:
        return {"stations": None}
    overview = station_overview(as_of=as_of, names=dict(phase_choices()))
    calendar = overview["calendar"]
    return {"stations": overview["phases"], "calendar": {
        **calendar, "day_labels": [DAY_LABELS[d] for d in calendar["days"]],
        "hours_text": ", ".join(f"{a:02d}:00–{b:02d}:00" for a, b in calendar["hour_ranges"])}}


def _form_context(request) -> dict:
    return {
        **_stations_context(),
        "rules": PriorityRule.choices,
        "phases": phase_choices(),
        "families": [c for c in ProductFamily.choices if c[0] != ProductFamily.UNKNOWN],
        "rows": range(OVERRIDE_ROWS),
        "can_run": can_run_whatif(request.user),
    }


@login_required
@require_GET
def whatif_page(request):
    """Scenario form, past runs and the latest backtest; ?run=<id> reopens a run under the form."""
    reopen = None
    run_id = id_param(request, "run")  # anything but ASCII digits: a 400 naming it
    if run_id is not None:
        reopen = WhatIfRun.objects.filter(pk=run_id).first()
    form = _form_context(request)
    names = dict(form["phases"])
    return render(request, "whatif/whatif.html", {
        **form,
        **_backtest_context(),
        **(_run_context(reopen, names) if reopen else {}),
        "as_of": data_as_of(),
        "runs": _past_runs(names),
    })


STATION_ROW_BASE = 50  # the stations table's changes become capacity rows cap-50-..., cap-51-... (two digits)


def _with_station_rows(post):
    """The form with each changed number of the stations table (stations-<phase> differing from its
    stations-<phase>-current) as one more capacity row, unless a capacity row already names that phase."""
    named = {post.get(k) for k in post if k.startswith("cap-") and k.endswith("-phase")}
    changed = []
    for key in sorted(post):
        if not key.startswith("stations-") or key.endswith("-current"):
            continue
        phase, value = key.removeprefix("stations-"), (post.get(key) or "").strip()
        if value and value != post.get(f"stations-{phase}-current") and phase not in named:
            changed.append((phase, value))
    if not changed:
        return post
    post = post.copy()
    for n, (phase, value) in enumerate(changed, start=STATION_ROW_BASE):
        post[f"cap-{n}-phase"], post[f"cap-{n}-servers"] = phase, value
    return post


@login_required
@require_POST
def whatif_run(request):
    """Run (or reuse) a scenario; supervisors and staff only. Answers the result partial (HTMX) or the page."""
    if not can_run_whatif(request.user):
        raise PermissionDenied(_("Running a what-if needs the supervisor role."))
    data, errors = clean_form(_with_station_rows(request.POST))  # the API's rules (whatif.validation), before any run
    if errors:
        # htmx swaps only 2xx answers: the form errors come back as 200 to HTMX, 400 otherwise.
        return render(request, "whatif/partials/_form_errors.html", {"errors": errors},
                      status=200 if request.htmx else 400)
    data.pop("run_async", None)
    data.pop("as_of", None)
    as_of = resolve_as_of(request.POST)  # validated above: given, else the data's as-of, else the clock
    try:
        run, _computed = whatif_run_request(inputs=canonical_inputs(validated=data, as_of=as_of))
    except QueueUnavailable as exc:
        # a long scenario could not be queued: its run is failed with the reason, which the result panel shows
        run = get_object_or_404(WhatIfRun, pk=exc.run_id)
    context = {**_run_context(run), **_backtest_context()}
    if request.htmx:
        response = render(request, "whatif/partials/_result.html", context)
        if context["done"]:
            response["HX-Trigger"] = RUN_DONE_EVENT
        return response
    return render(request, "whatif/whatif.html", {**_form_context(request), **context, "as_of": as_of,
                                                  "runs": _past_runs()})


@login_required
@require_GET
def whatif_run_detail(request, run_id: int):
    """One stored run: the result partial (HTMX polling answers 286 once it is done) or the page reopened."""
    run = get_object_or_404(WhatIfRun, pk=run_id)
    if not request.htmx:
        return whatif_page_with(request, run)
    context = {**_run_context(run), **_backtest_context()}
    response = render(request, "whatif/partials/_result.html", context)
    if context["done"] and request.GET.get("poll"):
        response.status_code = POLL_DONE
        response["HX-Trigger"] = RUN_DONE_EVENT  # the run finished while polled: the past runs list reloads
    return response


@login_required
@require_GET
def whatif_runs(request):
    """The past runs list (HTMX partial), reloaded when a run finishes."""
    return render(request, "whatif/partials/_runs.html", {"runs": _past_runs()})


def whatif_page_with(request, run: WhatIfRun) -> HttpResponse:
    form = _form_context(request)
    names = dict(form["phases"])
    return render(request, "whatif/whatif.html", {
        **form, **_backtest_context(), **_run_context(run, names),
        "as_of": data_as_of(), "runs": _past_runs(names)})


@login_required
@require_GET
def whatif_compare(request):
    """Two or more stored runs side by side: inputs and scenario KPIs."""
    ids = id_params(request, "run")[:4]
    runs = list(WhatIfRun.objects.filter(pk__in=ids, status=RunStatus.SUCCEEDED).order_by("id"))
    names = dict(phase_choices())
    columns = [{"run": r, "changes": scenario_changes(r, names), "moving": moving_orders(r, limit=5),
                "orders_affected": (r.outputs or {}).get("orders_affected")} for r in runs]
    rows = []
    for key, label, higher_better in KPI_ROWS:
        cells = []
        for r in runs:
            outputs = r.outputs or {}
            delta = (outputs.get("deltas") or {}).get(key)
            good = (delta > 0) == higher_better if isinstance(delta, int | float) and delta else None
            cells.append({"scenario": outputs.get("scenario", {}).get(key), "baseline": outputs.get("baseline", {}).get(key),
                          "delta": delta, "good": good})
        rows.append({"key": key, "label": label, "cells": cells})
    return render(request, "whatif/compare.html", {"columns": columns, "rows": rows, "as_of": data_as_of()})
