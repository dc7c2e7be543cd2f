"""Template filters of the models page: targets, algorithms, metrics (with units, in the page's number format), split sizes and feature names in words."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from mlops.labels import feature_label

register = template.Library()

_TARGETS = {
    "leadtime": gettext_lazy("Lead time"),
    "risk": gettext_lazy("Defect risk"),
    "eta": gettext_lazy("Remaining time"),
}
_ALGORITHMS = {
    "baseline": gettext_lazy("Baseline"),
    "hgb": gettext_lazy("Gradient boosting (scikit-learn)"),
    "mlp": gettext_lazy("Neural network (PyTorch)"),
}
_SPLITS = {
    "train": gettext_lazy("training"),
    "validation": gettext_lazy("validation"),
    "test": gettext_lazy("test"),
}

@register.filter
def feature(code: str) -> str:
    return feature_label(code)


@register.filter
def target_label(code: str | None) -> str:
    return str(_TARGETS.get(code, code or "—"))


@register.filter
def algorithm_label(code: str | None) -> str:
    return str(_ALGORITHMS.get(code, code or "—"))


@register.filter
def version_label(label: str | None) -> str:
    """A registry label ("leadtime:v3:hgb", ModelVersion.label) in words: "Lead time v3 (Gradient boosting)"."""
    parts = (label or "").split(":")
    if len(parts) != 3 or not parts[1].startswith("v"):
        return label or "—"
    return _("%(target)s %(version)s (%(algorithm)s)") % {
        "target": target_label(parts[0]), "version": parts[1], "algorithm": algorithm_label(parts[2])}


def _days(value: float) -> str:
    return ngettext("%(n)s day", "%(n)s days", 1 if value == 1 else 2) % {"n": number_format(round(value, 2), 2)}


def _percent(value: float) -> str:
    return number_format(round(value * 100, 1), 1) + "%"


_METRICS = {
    "n": (gettext_lazy("orders scored"), lambda v: number_format(round(v), 0, force_grouping=True)),
    "mae": (gettext_lazy("mean absolute error"), _days),
    "mape": (gettext_lazy("mean absolute percentage error"), _percent),
    "p90_abs_error": (gettext_lazy("absolute error, 90th percentile"), _days),
    "roc_auc": (gettext_lazy("ROC AUC (0.5: chance, 1: perfect)"), lambda v: number_format(round(v, 3), 3)),
    "brier": (gettext_lazy("Brier score (lower is better)"), lambda v: number_format(round(v, 3), 3)),
    "base_rate": (gettext_lazy("share of orders with a defect"), _percent),
}


@register.filter
def metric_rows(pairs) -> list[tuple[str, str]]:
    """(metric, value) pairs of a stored split (mlops.training.regression_metrics / classification_metrics) as
    (words, value with its unit in the page's number format)."""
    rows = []
    for key, value in pairs or []:
        label, render = _METRICS.get(key, (key.replace("_", " "), lambda v: number_format(round(v, 3), 3)))
        if value is None:
            shown = "—"
        elif isinstance(value, bool):
            shown = _("yes") if value else _("no")
        elif isinstance(value, int | float):
            shown = render(value)
        else:
            shown = str(value)
        rows.append((str(label), shown))
    return rows


@register.filter
def split_rows(rows: dict | None) -> list[tuple[str, str]]:
    """A version's rows per split ({"train": n, "validation": n, "test": n, "censor_cutoff": iso}) in words."""
    out = []
    for key, value in (rows.items() if isinstance(rows, dict) else []):
        if key == "censor_cutoff":
            if value:
                out.append((_("orders created up to"), str(value)[:10]))
            continue
        out.append((str(_SPLITS.get(key, key)), number_format(value, 0, force_grouping=True) if isinstance(value, int) else str(value)))
    return out
