"""Ingestion speed paths: cache warm-ups only where they help, incremental merges and derived-column refreshes."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from ingestion.services import cache_warmups_useful, ingest_workbook
from tests.ingestion.builders import write_workbook

pytestmark = pytest.mark.django_db

WARM_TASKS = {"orders.warm_cache", "quality.warm_cache", "inventory.warm_cache"}


def _warm_callbacks(callbacks) -> set[str]:
    return {getattr(getattr(cb, "__self__", None), "name", "") for cb in callbacks} & WARM_TASKS


def test_warmups_useless_only_for_a_short_lived_eager_process_with_a_local_cache(settings):
    # The test settings: eager Celery, LocMemCache.
    assert not cache_warmups_useful(process_exits=True)
    assert cache_warmups_useful(process_exits=False)  # ingestion inside the serving process fills its own cache
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/15"}}
    assert cache_warmups_useful(process_exits=True)  # shared cache: the worker's warm-up serves the API


def test_ingestion_queues_warmups_unless_told_not_to(empty_tables, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False)
    assert run.status == "succeeded" and _warm_callbacks(callbacks) == WARM_TASKS
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest_workbook(path=str(write_workbook(tmp_path / "a.xlsx")), profile=False, force=True, warm_caches=False)
    assert run.status == "succeeded" and _warm_callbacks(callbacks) == set()


def test_cli_skips_warmups_into_its_own_dying_cache(empty_tables, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("ingest", str(write_workbook(tmp_path / "a.xlsx")), "--no-profile")
    assert _warm_callbacks(callbacks) == set()
