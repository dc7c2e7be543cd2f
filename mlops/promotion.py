"""Honest promotion: a candidate's validation margin over its references with a paired bootstrap 95% interval, the
test check and the base-rate Brier check, as pure functions on arrays (the registry writes are mlops/services.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0  # fixed: the same data and predictions always give the same interval
TEST_TOLERANCE = 0.0  # the candidate's test metric may not be worse than a reference's at all
_CHUNK = 50  # resamples per vectorised block (block x groups weights in memory)

RULE = ("A candidate becomes the active model only if, against every reference (the run's best baseline and the "
        "active version, predicting the same validation rows), the paired bootstrap 95% interval of its validation "
        "margin lies above zero (MAE in days for lead time and remaining time, ROC AUC for risk; 1000 resamples of "
        "the validation orders with a fixed seed); its test metric is not worse than each reference's (tolerance "
        "0); and, for a classifier, its Brier score is below the Brier score of the training base rate on "
        "validation and on test. Among the candidates that pass, the best validation metric wins.")


@dataclass
class Reference:
    """What a candidate is compared with: a baseline of its run or the active version, with its predictions."""

    label: str
    kind: str  # "baseline" | "active"
    version_id: int | None
    validation: np.ndarray
    test: np.ndarray
    detail: str = ""  # baseline kind (product_median, load_aware, ...) or the active version's algorithm


def metric_name(regression: bool) -> str:
    return "mae" if regression else "roc_auc"


def _weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of `weights` (resample counts per row of y/p); ties count one half. NaN when a
    resample holds one class only. Sorting once makes every resample O(n)."""
    order = np.argsort(p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])  # first row of each tie group
    pos = np.add.reduceat(w * y_sorted, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - y_sorted), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored strictly lower than the group
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def metric(regression: bool, y: np.ndarray, pred: np.ndarray) -> float | None:
    """MAE (regression) or ROC AUC (classification) of predictions; None when undefined."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    if not len(y):
        return None
    if regression:
        return float(np.mean(np.abs(pred - y)))
    value = float(_weighted_auc(y, pred, np.ones((1, len(y))))[0])
    return None if np.isnan(value) else value


def brier(y: np.ndarray, p: np.ndarray) -> float | None:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return float(np.mean((p - y) ** 2)) if len(y) else None


def paired_bootstrap(regression: bool, y: np.ndarray, candidate: np.ndarray, reference: np.ndarray, *,
                     groups: np.ndarray | None = None, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     confidence: float = CONFIDENCE) -> dict:
    """Margin of the candidate over the reference (positive: candidate better; MAE_ref - MAE_cand, or
    AUC_cand - AUC_ref) and its percentile bootstrap interval. Both are scored on the same resampled rows
    (paired). With `groups` (one id per row, e.g. the order of an ETA boundary) whole groups are resampled, so
    rows of one order never count as independent evidence."""
    y = np.asarray(y, dtype=float)
    candidate, reference = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    n = len(y)
    out = {"n": int(n), "groups": None, "resamples": int(resamples), "seed": int(seed), "confidence": confidence,
           "margin": None, "low": None, "high": None, "excludes_zero": False, "resamples_used": 0}
    if n == 0:
        return out
    if groups is None:
        codes, n_groups = np.arange(n), n
    else:
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(codes.max()) + 1
    out["groups"] = int(n_groups)
    rng = np.random.default_rng(seed)
    margins = []
    if regression:
        gain = np.abs(reference - y) - np.abs(candidate - y)  # per row: error the candidate saves
        gain_sum = np.bincount(codes, weights=gain, minlength=n_groups)
        rows = np.bincount(codes, minlength=n_groups).astype(float)
        out["margin"] = float(gain.mean())
        for start in range(0, resamples, _CHUNK):
            counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=min(_CHUNK, resamples - start))
            margins.append((counts @ gain_sum) / (counts @ rows))
    else:
        base = metric(False, y, candidate), metric(False, y, reference)
        out["margin"] = None if None in base else base[0] - base[1]
        for start in range(0, resamples, _CHUNK):
            counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=min(_CHUNK, resamples - start))
            weights = counts[:, codes].astype(float)
            margins.append(_weighted_auc(y, candidate, weights) - _weighted_auc(y, reference, weights))
    margins = np.concatenate(margins)
    margins = margins[~np.isnan(margins)]
    out["resamples_used"] = int(len(margins))
    if out["margin"] is None or not len(margins):
        return out
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(margins, [tail, 100.0 - tail])
    out.update({"low": float(low), "high": float(high), "excludes_zero": bool(low > 0)})
    return out


def _not_worse(regression: bool, candidate: float | None, reference: float | None, tolerance: float) -> bool:
    if candidate is None or reference is None:
        return False
    return candidate <= reference + tolerance if regression else candidate >= reference - tolerance


def evaluate_candidate(*, regression: bool, y_validation: np.ndarray, y_test: np.ndarray,
                       validation: np.ndarray, test: np.ndarray, references: list[Reference],
                       train_base_rate: float | None = None, groups: np.ndarray | None = None,
                       seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES,
                       test_tolerance: float = TEST_TOLERANCE) -> dict:
    """The evidence for one candidate: per reference, the validation margin with its interval and the test
    comparison; for a classifier, Brier against the training base rate. `passed` is the rule's verdict."""
    name = metric_name(regression)
    comparisons, checks = [], []
    cand_val, cand_test = metric(regression, y_validation, validation), metric(regression, y_test, test)
    for ref in references:
        boot = paired_bootstrap(regression, y_validation, validation, ref.validation, groups=groups,
                                resamples=resamples, seed=seed)
        ref_test = metric(regression, y_test, ref.test)
        test_ok = _not_worse(regression, cand_test, ref_test, test_tolerance)
        comparisons.append({
            "reference": ref.label, "reference_kind": ref.kind, "reference_id": ref.version_id,
            "reference_detail": ref.detail,
            "validation": {"candidate": cand_val, "reference": metric(regression, y_validation, ref.validation),
                           **boot},
            "test": {"candidate": cand_test, "reference": ref_test,
                     "margin": None if None in (cand_test, ref_test) else
                     (ref_test - cand_test if regression else cand_test - ref_test),
                     "tolerance": test_tolerance, "not_worse": test_ok},
        })
        checks.append({"code": "validation_margin", "reference": ref.label, "ok": boot["excludes_zero"]})
        checks.append({"code": "test_not_worse", "reference": ref.label, "ok": test_ok})
    evidence = {"rule": RULE, "metric": name, "better": "lower" if regression else "higher",
                "candidate": {"validation": cand_val, "test": cand_test},
                "comparisons": comparisons}
    if not regression:
        rate = float(train_base_rate) if train_base_rate is not None else None
        brier_block = {"base_rate": rate}
        for split, y, p in (("validation", y_validation, validation), ("test", y_test, test)):
            cand = brier(y, p)
            base = brier(y, np.full(len(y), rate)) if rate is not None and len(y) else None
            ok = cand is not None and base is not None and cand < base
            brier_block[split] = {"candidate": cand, "base_rate": base, "ok": ok}
            checks.append({"code": f"brier_{split}", "ok": ok})
        evidence["brier"] = brier_block
    if not references:
        checks.append({"code": "no_reference", "ok": False})
    evidence["checks"] = checks
    evidence["passed"] = all(c["ok"] for c in checks)
    return evidence


def summary(evidence: dict) -> str:
    """One English sentence: the first failed check, or the margins over each reference."""
    metric_label = "MAE" if evidence.get("metric") == "mae" else "ROC AUC"
    by_ref = {c["reference"]: c for c in evidence.get("comparisons", [])}
    for check in evidence.get("checks", []):
        if check["ok"]:
            continue
        comp = by_ref.get(check.get("reference"), {})
        if check["code"] == "validation_margin":
            v = comp["validation"]
            if v["low"] is None:
                return f"validation {metric_label} undefined against {check['reference']}"
            return (f"validation {metric_label} margin over {check['reference']} {v['margin']:+.3f}, 95% interval "
                    f"{v['low']:+.3f}..{v['high']:+.3f} does not exclude zero")
        if check["code"] == "test_not_worse":
            t = comp["test"]
            return (f"test {metric_label} {_fmt(t['candidate'])} worse than {check['reference']}'s "
                    f"{_fmt(t['reference'])}")
        if check["code"].startswith("brier_"):
            split = check["code"].split("_", 1)[1]
            b = evidence["brier"][split]
            return f"{split} Brier {_fmt(b['candidate'])} not below the base rate's {_fmt(b['base_rate'])}"
        if check["code"] == "no_reference":
            return "no reference to compare with"
    parts = [f"{c['reference']} {c['validation']['margin']:+.3f} "
             f"[{c['validation']['low']:+.3f}, {c['validation']['high']:+.3f}]" for c in evidence["comparisons"]]
    return f"validation {metric_label} margin (95% interval) over " + "; ".join(parts) + "; test not worse"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
