"""ML benchmark: train every model on the loaded data, print the metrics table, save bench/results/ml.json.

Usage: DATABASE_URL=... .venv/bin/python bench/ml.py [--seed 0]
Goals: best lead-time test MAE >= 15% below the baseline's; risk test ROC AUC above the baseline's;
training of all models <= 120 s; a single prediction <= 20 ms.
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
        for version in ModelVersion.objects.filter(pk__in=[run["baseline"], *run["versions"]]).order_by("id"):
            m = version.metrics
            row = {"model": name, "algorithm": version.algorithm, "version": version.version,
                   "active": version.active, "fit_seconds": version.training_seconds,
                   "promotion": version.promotion_reason}
            for split in ("validation", "test"):
                for key, value in m.get(split, {}).items():
                    if key != "calibration":
                        row[f"{split}_{key}"] = value
            if name == "risk":
                row["test_calibration"] = m.get("test", {}).get("calibration")
            table.append(row)

    def best(name, key, lower_is_better):
        rows = [r for r in table if r["model"] == name and r["algorithm"] != "baseline" and r.get(key) is not None]
        return (min if lower_is_better else max)(rows, key=lambda r: r[key]) if rows else None

    base_lt = next(r for r in table if r["model"] == "leadtime" and r["algorithm"] == "baseline")
    base_risk = next(r for r in table if r["model"] == "risk" and r["algorithm"] == "baseline")
    best_lt, best_risk = best("leadtime", "test_mae", True), best("risk", "test_roc_auc", False)

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

    goals = {
        "leadtime_mae_reduction_vs_baseline": None if not best_lt else round(1 - best_lt["test_mae"] / base_lt["test_mae"], 4),
        "leadtime_goal_met": bool(best_lt and best_lt["test_mae"] <= 0.85 * base_lt["test_mae"]),
        "risk_auc_best": best_risk["test_roc_auc"] if best_risk else None,
        "risk_auc_baseline": base_risk.get("test_roc_auc"),
        "risk_goal_met": bool(best_risk and base_risk.get("test_roc_auc") is not None
                              and best_risk["test_roc_auc"] > base_risk["test_roc_auc"]),
        "training_seconds": round(training_seconds, 2),
        "training_goal_met": training_seconds <= 120,
        "prediction_ms_payload_p95": max(v["payload_end_to_end"]["p95_ms"] for v in latency.values()),
        "prediction_ms_order_id_p95": max((v.get("order_id_end_to_end") or {}).get("p95_ms", 0) for v in latency.values()),
    }
    goals["prediction_goal_met"] = goals["prediction_ms_payload_p95"] <= 20
    goals["dataset_query_seconds"] = round(dataset_seconds, 2)
    result = {"orders": orders, "finished_orders": finished, "runs": runs, "table": table, "latency": latency,
              "goals": goals}

    columns = ["model", "algorithm", "version", "active", "fit_seconds", "validation_mae", "test_mae", "test_mape",
               "test_p90_abs_error", "validation_roc_auc", "test_roc_auc", "test_brier"]
    print(f"orders={orders} finished={finished} training (both targets, datasets included) {training_seconds:.1f} s")
    print(" | ".join(columns))
    for row in table:
        print(" | ".join(str(row.get(c, "")) for c in columns))
    print(json.dumps({"latency": latency, "goals": goals}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
