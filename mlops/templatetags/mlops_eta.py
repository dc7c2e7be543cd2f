"""Template tags of the mlops pages: the latest ETA backtest, and the answering model described in words."""

from django import template
from django.utils.translation import gettext as _

from mlops.intervals import BUCKETS
from mlops.selectors import eta_backtest_score as latest

register = template.Library()


@register.simple_tag
def eta_backtest_score() -> dict | None:
    """The latest stored ETA backtest (mlops.selectors.eta_backtest_score) with its buckets as rows; None: none ran."""
    score = latest()
    if score is None:
        return None
    score["bucket_rows"] = [{"bucket": b, **(score["by_bucket"].get(b) or {})} for b in BUCKETS]
    return score


FALLBACK_WORDS = {
    "no_active_model": lambda: _("no trained model has passed the promotion rule"),
    "artifact_unusable": lambda: _("the active model's file could not be loaded"),
    "live_baseline": lambda: _("reference computed from all finished orders"),
}


@register.filter
def model_in_words(model: dict) -> str:
    """A prediction's model (Predictor.describe) for people: the reference baseline and why it answers, or the
    trained version's label; no registry codes on the page."""
    if not model:
        return ""
    if model.get("algorithm") != "baseline":
        return f"{model.get('label')}"
    reasons = [FALLBACK_WORDS[c]() for c in model.get("fallback_codes") or [] if c in FALLBACK_WORDS]
    return _("reference baseline") + (f" ({'; '.join(reasons)})" if reasons else "")


BASELINE_LEVEL_WORDS = {
    "product": lambda: _("the product's median"),
    "family": lambda: _("the family's median"),
    "family_phase": lambda: _("the median of the family at this phase"),
    "global": lambda: _("the median of all orders"),
}


@register.filter
def baseline_level_in_words(level: str) -> str:
    """Which table of the baseline answered (product, family, family_phase, global), in words."""
    words = BASELINE_LEVEL_WORDS.get(str(level))
    return words() if words else str(level)
