"""Model registry (trained versions with their metrics and artifacts) and stored predictions."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mlops.choices import Algorithm, ModelName, TrainingStatus


class ModelVersion(models.Model):
    """One trained model: what it predicts, how it was trained, how it scored, where its artifact lives.

    A baseline version keeps its lookup tables in `params` (no artifact file), so the fallback
    never depends on a file. At most one version per name is active (constraint)."""

    name = models.CharField(verbose_name=_("target"), max_length=16, choices=ModelName.choices)
    version = models.PositiveIntegerField(verbose_name=_("version"))
    algorithm = models.CharField(verbose_name=_("algorithm"), max_length=16, choices=Algorithm.choices)
    params = models.JSONField(verbose_name=_("parameters"), default=dict, blank=True, help_text=_("Hyper-parameters (baseline: its lookup tables)."))
    features = models.JSONField(verbose_name=_("features"), default=list, blank=True)
    data_version = models.PositiveBigIntegerField(verbose_name=_("data version"), help_text=_("prodplan.cache.data_version() when trained."))
    data_as_of = models.DateTimeField(verbose_name=_("data as of"), null=True, blank=True)
    train_start = models.DateTimeField(verbose_name=_("training from"), null=True, blank=True)
    validation_start = models.DateTimeField(verbose_name=_("validation from"), null=True, blank=True)
    test_start = models.DateTimeField(verbose_name=_("test from"), null=True, blank=True)
    test_end = models.DateTimeField(verbose_name=_("test until"), null=True, blank=True)
    rows = models.JSONField(verbose_name=_("rows per split"), default=dict, blank=True, help_text=_("Rows per split."))
    metrics = models.JSONField(verbose_name=_("metrics"), default=dict, blank=True, help_text=_("{'validation': {...}, 'test': {...}}"))
    importance = models.JSONField(verbose_name=_("feature importance"), default=list, blank=True, help_text=_("Global permutation importance (validation)."))
    residual_quantiles = models.JSONField(verbose_name=_("residual quantiles"), default=dict, blank=True, help_text=_("Validation residual q10/q90."))
    artifact_path = models.CharField(verbose_name=_("artifact path"), max_length=500, blank=True, default="")
    artifact_sha256 = models.CharField(verbose_name=_("artifact SHA-256"), max_length=64, blank=True, default="")
    training_seconds = models.FloatField(verbose_name=_("training time (seconds)"), null=True, blank=True)
    seed = models.IntegerField(verbose_name=_("seed"), default=0)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    active = models.BooleanField(verbose_name=_("active"), default=False)
    promotion_reason = models.TextField(verbose_name=_("promotion reason"), blank=True, default="")
    promotion_evidence = models.JSONField(
        verbose_name=_("promotion evidence"), default=dict, blank=True,
        help_text=_("Why it was (not) promoted: paired bootstrap interval of the validation margin, "
                  "test comparison, base-rate Brier (classifiers)."))

    class Meta:
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="mlops_modelversion_name_version"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(active=True), name="mlops_modelversion_one_active"
            ),
        ]
        indexes = [models.Index(fields=["name", "-version"], name="mlops_mv_name_version_idx")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.algorithm})"

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}:{self.algorithm}"


class Prediction(models.Model):
    """The latest prediction for an open order, refreshed by the nightly task (one row per order and target)."""

    order_id = models.BigIntegerField(verbose_name=_("order (id)"))
    name = models.CharField(verbose_name=_("target"), max_length=16, choices=ModelName.choices)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                      verbose_name=_("model version"))
    model_label = models.CharField(verbose_name=_("model"), max_length=64, help_text=_("'baseline' or name:vN:algorithm."))
    value = models.FloatField(verbose_name=_("value"), help_text=_("Lead time in days, or probability of a severe defect."))
    lower = models.FloatField(verbose_name=_("lower bound"), null=True, blank=True, help_text=_("Lead time: lower end of the 80-percent interval."))
    upper = models.FloatField(verbose_name=_("upper bound"), null=True, blank=True)
    predicted_finish = models.DateTimeField(verbose_name=_("predicted finish"), null=True, blank=True)
    as_of = models.DateTimeField(verbose_name=_("as of"))
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("prediction")
        verbose_name_plural = _("predictions")
        ordering = ["name", "order_id"]
        constraints = [models.UniqueConstraint(fields=["name", "order_id"], name="mlops_prediction_name_order")]
        indexes = [models.Index(fields=["name", "-value"], name="mlops_prediction_value_idx")]

    def __str__(self) -> str:
        return f"{self.name} of OF {self.order_id}: {self.value:.3f}"


class EtaBacktest(models.Model):
    """One replay of the remaining-time predictions at weekly past dates, scored against the real finishes.

    Written by `manage.py eta_backtest`; every ETA (API answers, the order page, the models page) shows the latest
    coverage of the 80% interval with its n and dates."""

    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    start = models.DateTimeField(verbose_name=_("start"), help_text=_("The first prediction date."))
    weeks = models.IntegerField(verbose_name=_("weeks"))
    model_source = models.CharField(
        verbose_name=_("model source"), max_length=200, help_text=_("'retrained at each date' (only what was known then) or the active model's label."))
    data_as_of = models.DateTimeField(verbose_name=_("data as of"), null=True, help_text=_("The data's as-of time when the backtest ran."))
    scored = models.IntegerField(verbose_name=_("scored"), help_text=_("Predictions whose outcome is known: finished, or never finished once "
                                           "the interval's upper end has passed (a miss)."))
    covered = models.IntegerField(verbose_name=_("covered"), help_text=_("Scored predictions whose real finish fell inside the 80-percent interval."))
    coverage = models.FloatField(verbose_name=_("coverage"), null=True, blank=True)
    finished = models.IntegerField(verbose_name=_("finished"), default=0, help_text=_("Scored predictions with a real finish (MAE and bias)."))
    mae_days = models.FloatField(verbose_name=_("mean absolute error (days)"), null=True, blank=True)
    bias_days = models.FloatField(verbose_name=_("bias (days)"), null=True, blank=True, help_text=_("Mean of predicted - real remaining days."))
    never_finished = models.IntegerField(verbose_name=_("never finished"), default=0, help_text=_("Counted as misses: unfinished past the upper end."))
    unknown = models.IntegerField(verbose_name=_("outcome unknown"), default=0, help_text=_("Excluded: unfinished, upper end after the data's as-of."))
    stalled = models.IntegerField(verbose_name=_("stalled"), default=0, help_text=_("Excluded: stalled at the date (answered 'stalled')."))
    by_bucket = models.JSONField(verbose_name=_("by progress"), default=dict, help_text=_("Per progress bucket: n, coverage, MAE, bias."))
    by_state = models.JSONField(verbose_name=_("by state"), default=dict, help_text=_("Per flow state at the date: n, coverage, MAE, bias."))
    weekly = models.JSONField(verbose_name=_("weekly detail"), default=list, help_text=_("Per date: open orders, scored, covered, MAE, bias."))
    details = models.JSONField(verbose_name=_("details"), default=dict, blank=True, help_text=_("Method, interval rule, the models used."))

    class Meta:
        verbose_name = _("ETA backtest")
        verbose_name_plural = _("ETA backtests")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(covered__lte=models.F("scored")),
                                   name="%(app_label)s_%(class)s_covered_within_scored"),
        ]

    def __str__(self) -> str:
        return f"ETA backtest {self.id}: {self.covered}/{self.scored}"


class TrainingJob(models.Model):
    """A training asked for on the models page ("train now"): queued, then run by mlops.tasks.train_job_task, whose
    progress the page polls. The versions it trained are in the registry; `result` keeps the service's summary."""

    name = models.CharField(verbose_name=_("target"), max_length=16, choices=ModelName.choices)
    seed = models.IntegerField(verbose_name=_("seed"), default=0)
    status = models.CharField(verbose_name=_("status"), max_length=16, choices=TrainingStatus.choices,
                              default=TrainingStatus.QUEUED)
    requested_by = models.ForeignKey("auth.User", verbose_name=_("requested by"), null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    started_at = models.DateTimeField(verbose_name=_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)
    result = models.JSONField(verbose_name=_("result"), default=dict, blank=True)
    error = models.TextField(verbose_name=_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("training job")
        verbose_name_plural = _("training jobs")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk} ({self.status})"
