"""What-if runs (a scenario's inputs, hash, data version and outputs) and backtest results."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from whatif.choices import RunStatus


class WhatIfRun(models.Model):
    """One simulated scenario; the same canonical inputs on the same data version are one row."""

    inputs = models.JSONField(verbose_name=_("inputs"), help_text=_("Canonical inputs (defaults filled, as-of resolved, lists sorted)."))
    input_hash = models.CharField(verbose_name=_("input hash"), max_length=64, help_text=_("sha256 of the canonical inputs."))
    data_version = models.IntegerField(verbose_name=_("data version"), help_text=_("prodplan.cache.data_version() when the run was made."))
    status = models.CharField(verbose_name=_("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    outputs = models.JSONField(verbose_name=_("outputs"), null=True, blank=True)
    error = models.TextField(verbose_name=_("error"), blank=True, default="")
    timings = models.JSONField(verbose_name=_("timings"), default=dict, blank=True, help_text=_("Milliseconds: gather, simulate, total."))
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(verbose_name=_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("what-if run")
        verbose_name_plural = _("what-if runs")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["input_hash", "data_version"], name="%(app_label)s_%(class)s_scenario"),
        ]
        indexes = [models.Index(fields=["-created_at", "-id"], name="whatif_run_created_idx")]

    def __str__(self) -> str:
        return gettext("What-if run %(id)s (%(status)s)") % {"id": self.pk, "status": self.get_status_display()}


class WhatIfBacktest(models.Model):
    """A backtest: the baseline simulated from a past date's WIP against the completions that followed."""

    start = models.DateTimeField(verbose_name=_("start"))
    weeks = models.IntegerField(verbose_name=_("weeks"))
    data_version = models.IntegerField(verbose_name=_("data version"))
    simulated_weekly = models.JSONField(verbose_name=_("simulated weekly completions"))
    actual_weekly = models.JSONField(verbose_name=_("actual weekly completions"))
    mape = models.FloatField(verbose_name=_("mean absolute percentage error"), null=True, blank=True, help_text=_("Mean absolute percentage error of weekly completions."))
    total_error = models.FloatField(verbose_name=_("total error"), null=True, blank=True, help_text=_("Relative error of the total completions."))
    details = models.JSONField(verbose_name=_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("what-if backtest")
        verbose_name_plural = _("what-if backtests")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return gettext("Backtest from %(start)s (%(weeks)s weeks)") % {"start": f"{self.start:%Y-%m-%d}", "weeks": self.weeks}
