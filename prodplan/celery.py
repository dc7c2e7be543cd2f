"""The Celery app; tasks run eagerly in-process when REDIS_URL is unset."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_prerun, worker_init, worker_process_shutdown

from prodplan.logging import current_request_id, set_request_id
from prodplan.worker_metrics import forget_process, serve_worker_metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")

app = Celery("prodplan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _propagate_request_id(headers=None, **kwargs):
    """Carry the web request id into the task so its log lines can be joined."""
    if headers is not None and "request_id" not in headers:
        headers["request_id"] = current_request_id()


@task_prerun.connect
def _adopt_request_id(task=None, **kwargs):
    request_id = getattr(task.request, "request_id", None) if task else None
    set_request_id(request_id or (task.request.id if task else None))


@worker_init.connect
def _serve_worker_metrics(**kwargs):
    """The worker's own /metrics (prodplan.worker_metrics), summing its pool processes."""
    serve_worker_metrics()


@worker_process_shutdown.connect
def _forget_pool_process(pid=None, **kwargs):
    forget_process(pid or os.getpid())
