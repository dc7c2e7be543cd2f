"""Celery tasks of the what-if domain: long scenarios run here (eagerly in-process without Redis)."""

from celery import shared_task


@shared_task(name="whatif.tasks.whatif_run_task")
def whatif_run_task(run_id: int) -> str:
    """Execute a stored run; idempotent (a succeeded run is returned as is)."""
    from whatif.services import whatif_run_execute

    return whatif_run_execute(run_id=run_id).status
