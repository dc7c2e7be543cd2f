"""What-if pages: the runs list and one run's result, with the latest backtest figure beside it."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from whatif.models import WhatIfRun
from whatif.selectors import latest_backtest, run_list


def runs_page(request):
    page = Paginator(run_list(), 50).get_page(request.GET.get("page"))
    return render(request, "whatif/runs.html", {"page": page, "backtest": latest_backtest()})


def result_page(request, whatif_id: int):
    run = get_object_or_404(WhatIfRun, pk=whatif_id)
    out = run.outputs or {}
    base, scen = out.get("baseline") or {}, out.get("scenario") or {}
    rows = [(label, base.get(key), scen.get(key), (out.get("deltas") or {}).get(key)) for label, key in [
        ("Orders finished", "orders_finished"), ("Mean throughput / week", "mean_throughput_per_week"),
        ("Mean remaining lead time (days)", "mean_remaining_lead_time_days"),
        ("P90 remaining lead time (days)", "p90_remaining_lead_time_days"),
        ("WIP at horizon end", "wip_at_horizon_end"), ("Mean queue wait (days)", "mean_queue_wait_days_overall"),
    ]]
    return render(request, "whatif/result.html", {"run": run, "out": out, "rows": rows, "backtest": latest_backtest()})
