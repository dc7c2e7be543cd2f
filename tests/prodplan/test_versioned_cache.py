"""@versioned_cache: one key per selector and arguments, shared by every caller; unknown names fail loudly."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from prodplan.cache import (
    UnknownCacheName,
    bump_data_version,
    cached_selector,
    versioned_cache,
    warm_selectors,
)

pytestmark = pytest.mark.django_db

CALLS: list[dict] = []
AS_OF = timezone.make_aware(datetime(2025, 3, 1, 12))


@versioned_cache("tests.scaled", ignore=("note",), warm=({"factor": 3},))
def scaled(*, as_of: datetime, factor: int = 2, note: str = "") -> dict:
    CALLS.append({"as_of": as_of, "factor": factor})
    return {"day": as_of.day * factor, "calls": len(CALLS)}


@pytest.fixture(autouse=True)
def _fresh_calls():
    CALLS.clear()


def test_one_entry_per_arguments_with_defaults_applied_and_ignored_ones_left_out():
    first = scaled(as_of=AS_OF)
    assert scaled(as_of=AS_OF, factor=2) == first  # the default spelt out: the same entry
    assert scaled(as_of=AS_OF, note="from a page") == first  # an ignored argument: the same entry
    assert len(CALLS) == 1
    assert scaled(as_of=AS_OF, factor=3)["day"] == 3  # other arguments: their own entry
    assert len(CALLS) == 2
    assert scaled.uncached(as_of=AS_OF)["calls"] == 3  # the undecorated selector stays reachable


def test_a_new_data_version_recomputes(django_capture_on_commit_callbacks):
    scaled(as_of=AS_OF)
    with django_capture_on_commit_callbacks(execute=True):
        bump_data_version()
    scaled(as_of=AS_OF)
    assert len(CALLS) == 2


def test_prime_stores_under_the_key_a_call_uses():
    assert scaled.prime([({"as_of": AS_OF}, {"day": -1, "calls": 0})]) == 1
    assert scaled(as_of=AS_OF, factor=2) == {"day": -1, "calls": 0}
    assert CALLS == []


def test_warm_up_calls_the_registered_variants_and_returns_their_names():
    assert warm_selectors("tests", as_of=AS_OF) == ["tests.scaled"]
    assert CALLS == [{"as_of": AS_OF, "factor": 3}]
    scaled(as_of=AS_OF, factor=3)
    assert len(CALLS) == 1  # the warmed entry answers


def test_unknown_cache_names_fail_loudly():
    assert cached_selector("tests.scaled") is scaled
    with pytest.raises(UnknownCacheName, match="quality.overveiw"):
        cached_selector("quality.overveiw")
    with pytest.raises(UnknownCacheName, match="qualty"):
        warm_selectors("qualty", as_of=AS_OF)


def test_names_are_unique_and_start_with_their_app_label():
    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        versioned_cache("tests.scaled")(lambda *, as_of: None)
    with pytest.raises(ImproperlyConfigured, match="app label"):
        versioned_cache("quality.from_a_test")(lambda *, as_of: None)
    with pytest.raises(ImproperlyConfigured, match="ignore"):
        versioned_cache("tests.ignores_nothing", ignore=("nope",))(lambda *, as_of: None)
    with pytest.raises(ImproperlyConfigured, match="warm variant"):
        versioned_cache("tests.warms_a_typo", warm=({"perod": "week"},))(lambda *, as_of, period="month": None)


def test_every_app_warm_up_names_registered_selectors():
    from ingestion.choices import RunStatus
    from ingestion.models import IngestionRun
    from inventory.services import inventory_cache_warm
    from orders.services import orders_cache_warm
    from quality.services import quality_cache_warm
    from tests.quality.builders import AS_OF as DATA_AS_OF
    from tests.quality.builders import build_factory

    build_factory()
    IngestionRun.objects.create(file_name="x.xlsx", status=RunStatus.SUCCEEDED, as_of=DATA_AS_OF)
    for warm, app in ((orders_cache_warm, "orders"), (quality_cache_warm, "quality"), (inventory_cache_warm, "inventory")):
        names = warm()
        assert names and {name.split(".")[0] for name in names} == {app}
        for name in names:
            assert cached_selector(name).cache_name == name


ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("app", ["ingestion", "orders", "quality", "inventory", "whatif", "mlops"])
def test_services_never_import_tasks(app):
    """Tasks import services; a service queues a task by name (prodplan.task_queue.task_named) or a signal."""
    imported = _imports(ROOT / app / "services.py")
    assert not {m for m in imported if m.endswith(".tasks") or ".tasks." in m}


def test_the_cache_does_not_import_the_as_of():
    assert not {m for m in _imports(ROOT / "prodplan" / "cache.py") if m.startswith("prodplan.asof")}
