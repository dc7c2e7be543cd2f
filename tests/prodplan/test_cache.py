"""The versioned cache: values memoised in-process per data version are dropped when an ingestion commits."""

from __future__ import annotations

import pytest

from prodplan.cache import bump_data_version, cached_in_process, data_version_memoised

pytestmark = pytest.mark.django_db


def test_in_process_values_are_recomputed_after_the_data_version_moves(django_capture_on_commit_callbacks):
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert cached_in_process("test.counter", compute) == 1
    assert cached_in_process("test.counter", compute) == 1  # memoised: no second computation
    before = data_version_memoised()
    with django_capture_on_commit_callbacks(execute=True):
        bump_data_version()
    assert data_version_memoised() == before + 1  # this process learns its own ingestion at once
    assert cached_in_process("test.counter", compute) == 2


def test_in_process_memo_is_off_with_the_cache(settings):
    settings.CACHE_ENABLED = False
    calls = []
    for _ in range(2):
        cached_in_process("test.uncached", lambda: calls.append(1))
    assert len(calls) == 2
