"""Fixtures of the mlops tests: artifacts in a temporary folder, a small synthetic factory, fast parameters."""

import pytest

FAST = {"hgb": {"max_iter": 40}, "mlp": {"epochs": 4, "hidden": 16, "batch_size": 64}}


@pytest.fixture(autouse=True)
def _artifact_dir(settings, tmp_path):
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    return settings.MODEL_ARTIFACT_DIR


@pytest.fixture
def factory(db):
    from tests.mlops.builders import build_factory

    return build_factory()


@pytest.fixture
def trained(factory):
    """Both targets trained once (fast parameters)."""
    from mlops import services

    return {name: services.train_models(name=name, params=FAST) for name in ("leadtime", "risk")}
