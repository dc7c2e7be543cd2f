"""Models page: the registry, validation/test metrics against the baseline, feature importance of the active models."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from orders.views import chart

IMPORTANCE_TOP = 12


def _importance_chart(version) -> dict | None:
    items = [i for i in (version.importance or []) if isinstance(i, dict)]
    if not items:
        return None
    key = next((k for k in ("importance", "mean", "value", "score") if k in items[0]), None)
    if key is None:
        return None
    items = sorted(items, key=lambda i: -(i.get(key) or 0))[:IMPORTANCE_TOP]
    return chart("bar", [str(i.get("feature", "?")) for i in items], [
        {"label": _("Permutation importance (validation)"), "data": [i.get(key) for i in items], "backgroundColor": "#4a7fc1"},
    ], indexAxis="y")


def _metric_pairs(metrics: dict, split: str) -> list[tuple[str, object]]:
    values = (metrics or {}).get(split) or {}
    return [(k, v) for k, v in values.items() if not isinstance(v, dict | list)]


@login_required
@require_GET
def models_page(request):
    """The registry newest first, with each version's metrics next to its run's baseline (one query)."""
    try:  # the registry's modules land separately; until then the page says so instead of breaking the URLconf
        from mlops.choices import Algorithm, ModelName
        from mlops.selectors import model_versions
    except ImportError:
        return render(request, "mlops/models.html", {"unavailable": True})
    versions = list(model_versions())
    rows = []
    for v in versions:
        rows.append({
            "v": v,
            "validation": _metric_pairs(v.metrics, "validation"),
            "test": _metric_pairs(v.metrics, "test"),
            "baseline": _metric_pairs(v.metrics, "baseline_validation"),
        })
    active = []
    for name, label in ModelName.choices:
        version = next((v for v in versions if v.name == name and v.active), None)
        config = _importance_chart(version) if version and version.algorithm != Algorithm.BASELINE else None
        active.append({"name": name, "label": label, "version": version, "config": config,
                       "chart_id": f"chart-importance-{name}"})
    return render(request, "mlops/models.html", {"rows": rows, "active": active})
