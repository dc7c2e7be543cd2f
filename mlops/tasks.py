"""Celery tasks of the mlops domain: thin wrappers over mlops.services (idempotent, safe to retry)."""

from celery import shared_task

from mlops import services
from prodplan.task_guard import single_instance


@shared_task(name="mlops.tasks.train_model_task")
@single_instance
def train_model_task(name: str, seed: int = 0) -> dict:
    """Train one target (baselines + candidates) and promote the best candidate whose evidence passes (mlops.promotion)."""
    try:
        return services.train_models(name=name, seed=seed, force=True)
    except services.TrainingNotSupported as exc:
        return {"name": name, "status": "not_supported", "reason": str(exc)}


@shared_task(name="mlops.tasks.train_all_models_task")
@single_instance
def train_all_models_task(seed: int = 0) -> dict:
    """Nightly (beat): train both targets unless this data version is already trained, then store
    predictions for open orders. Re-running on unchanged data only refreshes the predictions."""
    return services.train_all_models(seed=seed, force=False)


@shared_task(name="mlops.tasks.train_job_task")
def train_job_task(job_id: int) -> dict:
    """A "train now" job from the models page: one training at a time; a job meeting another is failed, saying so."""
    result = _train_job_single(job_id)
    if result.get("status") == "skipped" and "already running" in str(result.get("detail", "")):
        services.training_job_skipped(job_id=job_id, detail="another training job is running")
    return result


@single_instance
def _train_job_single(job_id: int) -> dict:
    return services.training_job_execute(job_id=job_id)
