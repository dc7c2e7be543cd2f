"""Models page (the registry, metrics against the baseline, feature importance) and the order page's prediction."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from mlops.choices import Algorithm, ModelName
from mlops.labels import feature_label
from mlops.models import Prediction, TrainingJob
from mlops.selectors import model_versions, order_page_eta, order_page_lead_time
from mlops.services import TRAINING_DONE, training_request
from mlops.templatetags.mlops_labels import version_label
from orders.choices import OrderState
from orders.selectors import order_states
from prodplan.pages import chart
from prodplan.roles import can_train_models
from prodplan.task_queue import QueueUnavailable

IMPORTANCE_TOP = 12


def _importance_chart(version) -> dict | None:
    """The active version's permutation importance (mlops.training.permutation_importance: feature, importance)."""
    items = sorted(version.importance or [], key=lambda i: -i["importance"])[:IMPORTANCE_TOP]
    if not items:
        return None
    return chart("bar", [feature_label(i["feature"]) for i in items], [
        {"label": _("Permutation importance (validation)"), "data": [i["importance"] for i in items],
         "backgroundColor": "#4a7fc1"},
    ], indexAxis="y")


def _metric_pairs(metrics: dict, split: str) -> list[tuple[str, object]]:
    values = (metrics or {}).get(split) or {}
    return [(k, v) for k, v in values.items() if not isinstance(v, dict | list)]


_VERDICTS = {
    "promoted": gettext_lazy("Promoted"),
    "passed": gettext_lazy("Passed the rule"),
    "passed_not_chosen": gettext_lazy("Passed the rule, another candidate scored better"),
    "refused": gettext_lazy("Not promoted"),
    "baseline": gettext_lazy("Baseline (reference, never active)"),
}
_BASELINE_KINDS = {
    "product_median": gettext_lazy("median by product"),
    "load_aware": gettext_lazy("load-aware, Little's law"),
    "product_rate": gettext_lazy("rate by product"),
    "family_phase_median": gettext_lazy("median by family and phase"),
}


def _failed_check(check: dict) -> str:
    code, reference = check.get("code"), version_label(check.get("reference", ""))
    if code == "validation_margin":
        return _("the 95%% interval of the validation margin over %(ref)s does not exclude zero") % {"ref": reference}
    if code == "test_not_worse":
        return _("worse than %(ref)s on the test split") % {"ref": reference}
    if code == "brier_validation":
        return _("Brier score not below the base rate's on validation")
    if code == "brier_test":
        return _("Brier score not below the base rate's on test")
    return _("no reference to compare with")


def promotion_evidence_view(version) -> dict | None:
    """The evidence behind a version's promotion decision, ready for the page (words, not the stored codes)."""
    evidence = version.promotion_evidence or {}
    verdict = evidence.get("verdict")
    if not verdict:
        return None
    if verdict == "baseline":
        return {"verdict": verdict, "verdict_label": _VERDICTS["baseline"],
                "baseline_kind": _BASELINE_KINDS.get(evidence.get("baseline_kind"), evidence.get("baseline_kind"))}
    comparisons = []
    for c in evidence.get("comparisons", []):
        kind = (_("active version") if c.get("reference_kind") == "active"
                else _BASELINE_KINDS.get(c.get("reference_detail"), _("baseline")))
        comparisons.append({"reference": c["reference"], "kind": kind, "validation": c["validation"],
                            "test": c["test"]})
    active = evidence.get("active_version") or {}
    return {
        "verdict": verdict, "verdict_label": _VERDICTS.get(verdict, verdict),
        "regression": evidence.get("metric") == "mae",
        "comparisons": comparisons, "brier": evidence.get("brier"),
        "failed": [_failed_check(c) for c in evidence.get("checks", []) if not c.get("ok")],
        "active_not_comparable": active.get("label") if active and not active.get("comparable") else None,
        "resamples": (evidence.get("comparisons") or [{}])[0].get("validation", {}).get("resamples"),
    }


@login_required
@require_GET
def models_page(request):
    """The registry newest first, with each version's metrics next to its run's baseline (one query)."""
    versions = list(model_versions())
    jobs = _latest_jobs()
    rows = []
    for v in versions:
        rows.append({
            "v": v,
            "validation": _metric_pairs(v.metrics, "validation"),
            "test": _metric_pairs(v.metrics, "test"),
            "baseline": _metric_pairs(v.metrics, "baseline_validation"),
            "evidence": promotion_evidence_view(v),
        })
    active = []
    for name, label in ModelName.choices:
        version = next((v for v in versions if v.name == name and v.active), None)
        config = _importance_chart(version) if version and version.algorithm != Algorithm.BASELINE else None
        active.append({"name": name, "label": label, "version": version, "config": config,
                       "evidence": promotion_evidence_view(version) if version else None,
                       "chart_id": f"chart-importance-{name}", "job": jobs.get(name),
                       "job_done": name in jobs and jobs[name].status in TRAINING_DONE})
    return render(request, "mlops/models.html", {"rows": rows, "active": active,
                                                 "can_train": can_train_models(request.user)})


POLL_DONE = 286  # htmx stops polling on this status


def _job_context(job: TrainingJob) -> dict:
    return {"job": job, "done": job.status in TRAINING_DONE}


def _latest_jobs() -> dict[str, TrainingJob]:
    """The newest "train now" job of each target (one query), shown in its card."""
    latest = {}
    for job in TrainingJob.objects.order_by("-id")[:50]:
        latest.setdefault(job.name, job)
    return latest


@login_required
@require_POST
def train_now(request):
    """Queue the training of one target (supervisors and superusers, as the API); answers the job's status
    partial, which polls until the training is done."""
    if not can_train_models(request.user):
        raise PermissionDenied(_("Training a model needs the supervisor role."))
    name = request.POST.get("name", "")
    if name not in ModelName.values:
        return HttpResponseBadRequest(_("Unknown model: %(name)s") % {"name": name[:40]})
    try:
        job = training_request(name=name, user=request.user)
    except QueueUnavailable as exc:  # the job is failed with the reason, which its partial shows
        job = get_object_or_404(TrainingJob, pk=exc.run_id)
    if not request.htmx:
        return redirect("models")
    return render(request, "mlops/partials/_training.html", _job_context(job))


@login_required
@require_GET
def train_status(request, job_id: int):
    """A training job's status partial (HTMX ?poll=1 answers 286 once it is done)."""
    job = get_object_or_404(TrainingJob, pk=job_id)
    context = _job_context(job)
    response = render(request, "mlops/partials/_training.html", context)
    if context["done"] and request.GET.get("poll"):
        response.status_code = POLL_DONE
    return response


def order_forecast(*, order_id: int, as_of: datetime, state: str | None) -> dict | None:
    """What the order page's timeline draws from the models (prodplan.pages panel, registered in MlopsConfig.ready()):
    an open, active order's predicted finish and 80% interval at as_of (the ETA); a finished order's lead time
    predicted at its creation (the first stored prediction known at as_of, else the active model on the features at
    creation). None: stalled, abandoned, or no prediction."""
    if state == OrderState.FINISHED:
        stored = (Prediction.objects.filter(order_id=order_id, name=ModelName.LEAD_TIME, as_of__lte=as_of)
                  .order_by("as_of").values("value", "lower", "upper", "as_of", "model_label").first())
        if stored:
            return {"kind": "finished", "lead_time_days": stored["value"], "lower": stored["lower"],
                    "upper": stored["upper"], "made_at": stored["as_of"], "stored": True,
                    "model": stored["model_label"]}
        answer = order_page_lead_time(order_id=order_id)
        if not answer or answer.get("lead_time_days") is None:
            return None
        interval = answer.get("interval_80") or {}
        return {"kind": "finished", "lead_time_days": answer["lead_time_days"], "lower": interval.get("lower"),
                "upper": interval.get("upper"), "made_at": None, "stored": False, "model": answer["model"]}
    if state in (None, OrderState.STALLED, OrderState.ABANDONED):
        return None
    eta = order_page_eta(order_id=order_id, as_of=as_of)
    if not eta or eta.get("status") == "stalled" or not eta.get("predicted_finish"):
        return None
    interval = eta.get("finish_interval_80") or {}
    return {"kind": "open", "remaining_days": eta["remaining_days"],
            "predicted_finish": datetime.fromisoformat(eta["predicted_finish"]),
            "earliest": datetime.fromisoformat(interval["earliest"]) if interval else None,
            "latest": datetime.fromisoformat(interval["latest"]) if interval else None, "model": eta["model"]}

def order_prediction(*, order_id: int, as_of: datetime) -> dict:
    """The order page's prediction widget (prodplan.pages, registered in MlopsConfig.ready()): remaining time at
    as_of and the lead-time prediction (the active model, else its baseline).

    A stalled, abandoned or finished order gets no predicted finish: its state says why."""
    state = order_states(as_of=as_of, order_ids=[order_id]).get(order_id)
    if state and state["state"] in (OrderState.STALLED, OrderState.ABANDONED, OrderState.FINISHED):
        idle = (as_of - state["last_event_at"]).total_seconds() / 86400.0 if state["last_event_at"] else None
        return {"prediction": None, "state": state["state"], "idle_days": idle, "unavailable": None}
    # the remaining time from the order's state at as_of (calibrated interval, latest backtest's coverage)
    eta = order_page_eta(order_id=order_id, as_of=as_of)
    prediction = order_page_lead_time(order_id=order_id)
    if prediction and prediction.get("predicted_finish") and str(prediction["predicted_finish"]) < as_of.isoformat():
        prediction = {**prediction, "predicted_finish_past": True}
    return {"prediction": prediction, "eta": eta,
            "unavailable": None if prediction or eta else _("no features for this order")}
