"""Quality errors found on orders; sheet OrdemFabricoErros."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from psqlextra.models import PostgresPartitionedModel
from psqlextra.types import PostgresPartitioningMethod

from prodplan.db import NextVal
from quality.choices import Severity


class QualityErrorColumns(models.Model):
    """The columns of OrdemFabricoErros, shared by the partitioned table and its admin view."""

    id = models.BigIntegerField(verbose_name=_("id"), db_default=NextVal("quality_qualityerror_id_seq"), editable=False)
    order_id = models.BigIntegerField(verbose_name=_("order (id)"), db_comment="Erro_OfId")
    description = models.TextField(verbose_name=_("description"), blank=True, default="", db_comment="Erro_Descricao")
    found_phase_id = models.BigIntegerField(verbose_name=_("phase where found (id)"), null=True, blank=True, db_comment="Erro_FaseAvaliacao (catalogue phase)")
    severity = models.SmallIntegerField(verbose_name=_("severity"), choices=Severity.choices, db_comment="OFCH_GRAVIDADE")
    found_order_phase_id = models.BigIntegerField(verbose_name=_("order phase where found (id)"), null=True, blank=True, db_comment="Erro_FaseOfAvaliacao")
    culprit_order_phase_id = models.BigIntegerField(verbose_name=_("culprit order phase (id)"), null=True, blank=True, db_comment="Erro_FaseOfCulpada")
    content_hash = models.CharField(verbose_name=_("content hash"), max_length=64, help_text=_("SHA-256 of the normalised row content."))
    occurrence = models.PositiveIntegerField(verbose_name=_("occurrence"), default=1, help_text=_("1 for the first identical row, 2 for the next…"))
    event_time = models.DateTimeField(verbose_name=_("event time"),
        null=True, blank=True, help_text=_("Derived: end of the phase where found, else the culprit phase, else the order.")
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return gettext("Error on OF %(order)s (severity %(severity)s)") % {"order": self.order_id, "severity": self.severity}


class QualityError(PostgresPartitionedModel, QualityErrorColumns):
    """A defect found on an order, with where it was found and (often) the phase that caused it.

    The sheet has no key: identity is the row's content. content_hash is the SHA-256 of the
    normalised row and occurrence numbers identical rows (1, 2, …), so re-ingesting the same
    file never duplicates errors and two identical rows stay two rows. HASH-partitioned by order."""

    class PartitioningMeta:
        method = PostgresPartitioningMethod.HASH
        key = ["order_id"]

    pk = models.CompositePrimaryKey("id", "order_id")

    class Meta:
        verbose_name = _("quality error (OrdemFabricoErros)")
        verbose_name_plural = _("quality errors (OrdemFabricoErros)")
        db_table_comment = "OrdemFabricoErros"
        ordering = ["order_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "content_hash", "occurrence"], name="quality_qualityerror_identity"),
            models.CheckConstraint(condition=models.Q(severity__in=[1, 2, 3]), name="quality_qualityerror_severity"),
        ]
        indexes = [
            models.Index(fields=["found_phase_id", "severity"], name="quality_qe_found_phase_idx"),
            models.Index(fields=["culprit_order_phase_id"], name="quality_qe_culprit_idx"),
            models.Index(fields=["event_time"], name="quality_qe_event_time_idx"),
        ]



class QualityErrorRecord(QualityErrorColumns):
    """Read-only single-key view of the error table for Django admin (Django 5.2 admin refuses composite keys)."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True)

    class Meta:
        managed = False
        db_table = "quality_qualityerror"
        verbose_name = _("quality error (OrdemFabricoErros)")
        verbose_name_plural = _("quality errors (OrdemFabricoErros)")
        ordering = ["order_id", "id"]
