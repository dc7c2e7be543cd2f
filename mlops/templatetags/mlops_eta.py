"""Template tags of the mlops pages: the latest ETA backtest, for the blocks that show the interval's track record."""

from django import template

register = template.Library()


@register.simple_tag
def eta_backtest_score() -> dict | None:
    """The latest stored ETA backtest (mlops.selectors.eta_backtest_score) with its buckets as rows; None: none ran."""
    from mlops.intervals import BUCKETS
    from mlops.selectors import eta_backtest_score as latest

    score = latest()
    if score is None:
        return None
    score["bucket_rows"] = [{"bucket": b, **(score["by_bucket"].get(b) or {})} for b in BUCKETS]
    return score
