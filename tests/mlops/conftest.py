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
    """Both targets trained once (fast parameters). Lead time learns labels with a weekday effect no baseline sees
    (builders.weekday_signal), so a candidate is promoted under the evidence rule; the factory's own lead time
    follows its load, which the load-aware baseline already captures."""
    from mlops import services
    from mlops.datasets import order_features
    from tests.mlops.builders import weekday_signal

    return {"leadtime": services.train_models(name="leadtime", params=FAST,
                                              frame=weekday_signal(order_features(which="finished"))),
            "risk": services.train_models(name="risk", params=FAST)}
