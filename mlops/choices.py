"""Choices of the mlops domain: which target a model predicts and with which algorithm."""

from django.db import models


class ModelName(models.TextChoices):
    LEAD_TIME = "leadtime", "Lead time (days from creation to finish)"
    RISK = "risk", "Defect risk (at least one error of severity >= 2)"
    ETA = "eta", "Remaining time (days from a phase boundary to the order's finish)"


# Targets predicted in days (regressors): MAE / MAPE / p90 metrics and residual intervals.
REGRESSION_TARGETS = frozenset({ModelName.LEAD_TIME, ModelName.ETA})


class Algorithm(models.TextChoices):
    BASELINE = "baseline", "Baseline (historical median / rate by product)"
    HGB = "hgb", "scikit-learn HistGradientBoosting"
    MLP = "mlp", "PyTorch MLP with product and family embeddings"
