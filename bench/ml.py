"""ML benchmark: train every model on the loaded data, print the metrics table and the active model with its evidence.

Usage: DATABASE_URL=... .venv/bin/python bench/ml.py [--seed 0]   (writes bench/results/ml.json)
The model that counts is the one the registry made active (mlops.promotion.RULE: a validation margin whose paired
bootstrap 95% interval excludes zero against the best baseline and the active version, not worse on test, risk
beating the base rate's Brier); with none active, the baseline answers. Nothing is picked on the test split here.
Goals: training of all models <= 120 s; a single prediction <= 20 ms. Lead-time test MAE of the answering model
against the product median and the load-aware baseline, and risk against its baseline, are reported, not chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")


def _latency_ms(fn, repeats: int = 50) -> dict:
    fn()  # warm (artifact load, imports)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 3), "p95_ms": round(samples[int(0.95 * len(samples)) - 1], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ml.json"))
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from mlops import services
    from mlops.datasets import order_features
    from mlops.models import ModelVersion
    from mlops.selectors import active_predictor, features_from_payload, predict

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(finished_at) FROM orders_manufacturingorder")
        orders, finished = cursor.fetchone()
    started = time.perf_counter()
    frame = order_features(which="finished")  # one dataset query shared by both targets
    dataset_seconds = time.perf_counter() - started
    runs = {name: services.train_models(name=name, seed=args.seed, frame=frame) for name in ("leadtime", "risk")}
    training_seconds = time.perf_counter() - started

    table = []
    for name, run in runs.items():
        for version in ModelVersion.objects.filter(pk__in=[*run["baselines"], *run["versions"]]).order_by("id"):
            m = version.metrics
            evidence = version.promotion_evidence or {}
            row = {"model": name, "algorithm": version.algorithm, "version": version.version,
                   "active": version.active, "fit_seconds": version.training_seconds,
                   "baseline_kind": evidence.get("baseline_kind"), "verdict": evidence.get("verdict"),
                   "promotion": version.promotion_reason}
            for split in ("validation", "test"):
                for key, value in m.get(split, {}).items():
                    if key != "calibration":
                        row[f"{split}_{key}"] = value
            if name == "risk":
                row["test_calibration"] = m.get("test", {}).get("calibration")
            table.append(row)

    def answering(name):
        """The registry's active version of this run (its evidence), else the fallback baseline: never a pick on test."""
        run = runs[name]
        version = ModelVersion.objects.filter(name=name, active=True).first()
        fallback = ModelVersion.objects.get(pk=run["baseline"])
        chosen = version or fallback
        evidence = (version.promotion_evidence if version else {}) or {}
        return {
            "label": chosen.label if version else "baseline", "version_id": chosen.pk,
            "promoted_in_this_run": run.get("promoted") is not None,
            "test": {k: v for k, v in chosen.metrics.get("test", {}).items() if k != "calibration"},
            "promotion_reason": version.promotion_reason if version else "no active model: the baseline answers",
            "evidence": {k: evidence.get(k) for k in ("verdict", "metric", "comparisons", "brier", "active_version")
                         if k in evidence},
        }

    def baseline_row(name, kind):
        rows = [r for r in table if r["model"] == name and r["algorithm"] == "baseline" and r["baseline_kind"] == kind]
        return rows[-1] if rows else None

    active = {name: answering(name) for name in runs}
    base_lt, load_lt = baseline_row("leadtime", "product_median"), baseline_row("leadtime", "load_aware")
    base_risk = baseline_row("risk", "product_rate")

    # latency: one order by id (features by index look-ups + model), and one feature payload (model only)
    open_ids = order_features(which="open")["order_id"].tolist()[:1]
    order_id = int(open_ids[0]) if open_ids else None
    latency = {}
    for name in ("leadtime", "risk"):
        predictor = active_predictor(name)
        frame = features_from_payload(name, {"family": "K1", "product_id": 1, "open_orders": 50})
        latency[name] = {
            "answered_by": predictor.label,
            "model_only": _latency_ms(lambda p=predictor, f=frame: p.predict(f)),
            "payload_end_to_end": _latency_ms(lambda n=name: predict(name=n, features={"family": "K1", "product_id": 1})),
        }
        if order_id is not None:
            latency[name]["order_id_end_to_end"] = _latency_ms(lambda n=name: predict(name=n, order_id=order_id))

    lt_test = active["leadtime"]["test"].get("mae")
    goals = {
        "leadtime_answering": active["leadtime"]["label"],
        "leadtime_test_mae": lt_test,
        "leadtime_test_mae_product_median": base_lt and base_lt.get("test_mae"),
        "leadtime_test_mae_load_aware_baseline": load_lt and load_lt.get("test_mae"),
        "leadtime_validation_mae_product_median": base_lt and base_lt.get("validation_mae"),
        "leadtime_validation_mae_load_aware_baseline": load_lt and load_lt.get("validation_mae"),
        "risk_answering": active["risk"]["label"],
        "risk_test_auc": active["risk"]["test"].get("roc_auc"),
        "risk_test_auc_baseline": base_risk and base_risk.get("test_roc_auc"),
        "risk_test_brier": active["risk"]["test"].get("brier"),
        "training_seconds": round(training_seconds, 2),
        "training_goal_met": training_seconds <= 120,
        "prediction_ms_payload_p95": max(v["payload_end_to_end"]["p95_ms"] for v in latency.values()),
        "prediction_ms_order_id_p95": max((v.get("order_id_end_to_end") or {}).get("p95_ms", 0) for v in latency.values()),
    }
    goals["prediction_goal_met"] = goals["prediction_ms_payload_p95"] <= 20
    goals["dataset_query_seconds"] = round(dataset_seconds, 2)
    result = {"orders": orders, "finished_orders": finished, "runs": runs, "table": table, "latency": latency,
              "active": active, "goals": goals}

    columns = ["model", "algorithm", "baseline_kind", "version", "active", "verdict", "fit_seconds", "validation_mae",
               "test_mae", "test_mape", "test_p90_abs_error", "validation_roc_auc", "test_roc_auc", "test_brier"]
    print(f"orders={orders} finished={finished} training (both targets, datasets included) {training_seconds:.1f} s")
    print(" | ".join(columns))
    for row in table:
        print(" | ".join(str(row.get(c, "")) for c in columns))
    for row in table:
        if row["algorithm"] != "baseline":
            print(f"{row['model']} v{row['version']} {row['algorithm']}: {row['promotion']}")
    for name, info in active.items():
        print(f"{name}: answered by {info['label']} ({info['promotion_reason']})")
        for c in info["evidence"].get("comparisons", []):
            v = c["validation"]
            print(f"  vs {c['reference']} ({c['reference_kind']} {c['reference_detail']}): validation margin "
                  f"{v['margin']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] (n={v['n']}, {v['resamples']} resamples, "
                  f"seed {v['seed']}); test {c['test']['candidate']:.4f} vs {c['test']['reference']:.4f}")
        if info["evidence"].get("brier"):
            b = info["evidence"]["brier"]
            print(f"  Brier validation {b['validation']['candidate']:.4f} vs base rate {b['validation']['base_rate']:.4f}; "
                  f"test {b['test']['candidate']:.4f} vs {b['test']['base_rate']:.4f}")
    print(json.dumps({"latency": latency, "goals": goals}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
