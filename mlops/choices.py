"""Choices of the mlops domain: which target a model predicts and with which algorithm."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ModelName(models.TextChoices):
    LEAD_TIME = "leadtime", _("Lead time (days from creation to finish)")
    RISK = "risk", _("Defect risk (at least one error of severity >= 2)")
    ETA = "eta", _("Remaining time (days from a phase boundary to the order's finish)")


# Targets predicted in days (regressors): MAE / MAPE / p90 metrics and residual intervals.
REGRESSION_TARGETS = frozenset({ModelName.LEAD_TIME, ModelName.ETA})


class Algorithm(models.TextChoices):
    BASELINE = "baseline", _("Baseline (historical median / rate by product)")
    HGB = "hgb", _("scikit-learn HistGradientBoosting")
    MLP = "mlp", _("PyTorch MLP with product and family embeddings")


class TrainingStatus(models.TextChoices):
    """State of a training requested from the models page (mlops.models.TrainingJob)."""

    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Training")
    SUCCEEDED = "succeeded", _("Trained")
    NOT_SUPPORTED = "not_supported", _("Not enough data to train")
    FAILED = "failed", _("Failed")
