"""Domain metrics exported on /metrics next to django-prometheus's own."""

from prometheus_client import Counter, Histogram

INGESTED_ROWS = Counter("prodplan_ingested_rows_total", "Workbook rows by sheet and outcome", ["sheet", "outcome"])
INGESTION_RUNS = Counter("prodplan_ingestion_runs_total", "Ingestion runs by final status", ["status"])
INGESTION_DURATION = Histogram(
    "prodplan_ingestion_duration_seconds", "Wall time of ingestion runs", buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
)
REJECTS = Counter("prodplan_rejects_total", "Rejected workbook rows by sheet and reason", ["sheet", "reason"])
CACHE_EVENTS = Counter("prodplan_cache_events_total", "Versioned cache lookups", ["name", "outcome"])
CACHE_FALLBACKS = Counter("prodplan_cache_fallbacks_total", "Times Redis failed and this process cached locally for a while")
WHATIF_RUNS = Counter("prodplan_whatif_runs_total", "What-if simulations", ["outcome"])
WHATIF_DURATION = Histogram("prodplan_whatif_duration_seconds", "What-if simulation wall time")
MODEL_INFERENCE = Histogram(
    "prodplan_model_inference_seconds", "Model inference time", ["model"], buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)
)
TASK_FAILURES = Counter("prodplan_task_failures_total", "Celery task failures", ["task"])
RESPONSE_CACHE_EVENTS = Counter(
    "prodplan_response_cache_events_total", "Rendered-response cache: hits (local/shared), stores, bypasses", ["outcome"]
)
