"""Catalogue and manufacturing orders: the eight ERP sheets the orders domain owns."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from psqlextra.models import PostgresPartitionedModel
from psqlextra.types import PostgresPartitioningMethod

from orders.choices import ProductFamily, Shift
from prodplan.db import NextVal


class Product(models.Model):
    """A product model (boat); sheet Modelos."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True, db_comment="Produto_Id")
    name = models.CharField(verbose_name=_("name"), max_length=200, db_comment="Produto_Nome")
    family = models.CharField(verbose_name=_("family"),
        max_length=8, choices=ProductFamily.choices, default=ProductFamily.OTHER, db_index=True,
        help_text=_("Derived from the product name (K1, K2, K4, C1, C2, C4)."),
    )
    demould_weight_kg = models.FloatField(verbose_name=_("demoulding weight (kg)"), null=True, blank=True, db_comment="Produto_PesoDesmolde")
    finished_weight_kg = models.FloatField(verbose_name=_("finished weight (kg)"), null=True, blank=True, db_comment="Produto_PesoAcabamento")
    gelcoat_deck_qty = models.FloatField(verbose_name=_("deck gelcoat quantity"), null=True, blank=True, db_comment="Produto_QtdGelDeck")
    gelcoat_hull_qty = models.FloatField(verbose_name=_("hull gelcoat quantity"), null=True, blank=True, db_comment="Produto_QtdGelCasco")

    class Meta:
        verbose_name = _("product (Modelos)")
        verbose_name_plural = _("products (Modelos)")
        db_table_comment = "Modelos"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"


class Phase(models.Model):
    """A catalogue phase (moulding, gelcoat, lamination…); sheet Fases."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True, db_comment="Fase_Id")
    name = models.CharField(verbose_name=_("name"), max_length=200, db_comment="Fase_Nome")
    sequence = models.IntegerField(verbose_name=_("sequence"), null=True, blank=True, db_comment="Fase_Sequencia")
    is_production = models.BooleanField(verbose_name=_("production phase"), default=True, db_comment="Fase_DeProducao")
    is_automatic = models.BooleanField(verbose_name=_("automatic"), default=False, db_comment="Fase_Automatica")

    class Meta:
        verbose_name = _("phase (Fases)")
        verbose_name_plural = _("phases (Fases)")
        db_table_comment = "Fases"
        ordering = ["sequence", "id"]
        indexes = [models.Index(fields=["sequence", "id"], name="orders_phase_sequence_idx")]

    def __str__(self) -> str:
        return self.name


class RouteStep(models.Model):
    """One step of a product's standard route; sheet FasesStandardModelos."""

    product_id = models.BigIntegerField(verbose_name=_("product (id)"), db_comment="ProdutoFase_ProdutoId")
    phase_id = models.BigIntegerField(verbose_name=_("phase (id)"), db_comment="ProdutoFase_FaseId")
    sequence = models.IntegerField(verbose_name=_("sequence"), db_comment="ProdutoFase_Sequencia")
    labour_coefficient = models.FloatField(verbose_name=_("labour coefficient"), null=True, blank=True, db_comment="ProdutoFase_Coeficiente")
    machine_coefficient = models.FloatField(verbose_name=_("machine coefficient"), null=True, blank=True, db_comment="ProdutoFase_CoeficienteX")

    class Meta:
        verbose_name = _("standard route step (FasesStandardModelos)")
        verbose_name_plural = _("standard route steps (FasesStandardModelos)")
        db_table_comment = "FasesStandardModelos"
        ordering = ["product_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["product_id", "phase_id", "sequence"], name="orders_routestep_key"),
        ]
        indexes = [models.Index(fields=["product_id", "sequence"], name="orders_routestep_product_idx")]

    def __str__(self) -> str:
        return gettext("Product %(product)s step %(step)s: phase %(phase)s") % {
            "product": self.product_id, "step": self.sequence, "phase": self.phase_id}


class Employee(models.Model):
    """An employee; sheet Funcionarios. The name is personal data."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True, db_comment="Funcionario_Id")
    name = models.CharField(verbose_name=_("name"), max_length=200, db_comment="Funcionario_Nome (personal data)")
    is_active = models.BooleanField(verbose_name=_("active"), default=True, db_comment="Funcionario_Activo")

    class Meta:
        verbose_name = _("employee (Funcionarios)")
        verbose_name_plural = _("employees (Funcionarios)")
        db_table_comment = "Funcionarios"
        ordering = ["id"]
        permissions = [("view_employee_name", _("Can see employee names"))]

    def __str__(self) -> str:
        return gettext("Employee %(id)s") % {"id": self.id}


class EmployeeSkill(models.Model):
    """A phase an employee is qualified for, since a date; sheet FuncionariosFasesAptos."""

    employee_id = models.BigIntegerField(verbose_name=_("employee (id)"), db_comment="FuncionarioFase_FuncionarioId")
    phase_id = models.BigIntegerField(verbose_name=_("phase (id)"), db_comment="FuncionarioFase_FaseId")
    qualified_since = models.DateTimeField(verbose_name=_("qualified since"), null=True, blank=True, db_comment="FuncionarioFase_Inicio")

    class Meta:
        verbose_name = _("employee skill (FuncionariosFasesAptos)")
        verbose_name_plural = _("employee skills (FuncionariosFasesAptos)")
        db_table_comment = "FuncionariosFasesAptos"
        ordering = ["employee_id", "phase_id"]
        constraints = [models.UniqueConstraint(fields=["employee_id", "phase_id"], name="orders_employeeskill_key")]

    def __str__(self) -> str:
        return gettext("Employee %(employee)s qualified for phase %(phase)s") % {"employee": self.employee_id, "phase": self.phase_id}


class ManufacturingOrder(models.Model):
    """A manufacturing order; sheet OrdensFabrico. product_id may name no product (orphan)."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True, db_comment="Of_Id")
    created_at = models.DateTimeField(verbose_name=_("created at"), null=True, blank=True, db_comment="Of_DataCriacao")
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True, db_comment="Of_DataAcabamento (empty: open)")
    product_id = models.BigIntegerField(verbose_name=_("product (id)"), null=True, blank=True, db_comment="Of_ProdutoId (not enforced: orphans exist)")
    current_phase_id = models.BigIntegerField(verbose_name=_("current phase (id)"), null=True, blank=True, db_comment="Of_FaseId")
    shipped_at = models.DateTimeField(verbose_name=_("shipped at"), null=True, blank=True, db_comment="Of_DataTransporte")
    is_open = models.BooleanField(verbose_name=_("still open"), default=True, help_text=_("Derived: no finish date."))
    lead_time_days = models.FloatField(verbose_name=_("lead time (days)"), null=True, blank=True, help_text=_("Derived: finished - created, in days."))

    class Meta:
        verbose_name = _("manufacturing order (OrdensFabrico)")
        verbose_name_plural = _("manufacturing orders (OrdensFabrico)")
        db_table_comment = "OrdensFabrico"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["product_id", "created_at"], name="orders_mo_product_created_idx"),
            models.Index(fields=["created_at"], name="orders_mo_created_idx"),
            models.Index(fields=["finished_at"], name="orders_mo_finished_idx"),
            models.Index(fields=["current_phase_id"], name="orders_mo_open_phase_idx", condition=models.Q(is_open=True)),
        ]

    def __str__(self) -> str:
        return f"OF {self.id}"


class OrderPhaseColumns(models.Model):
    """The columns of FasesOrdemFabrico, shared by the partitioned table and its admin view."""

    id = models.BigIntegerField(verbose_name=_("id"), db_comment="FaseOf_Id")
    order_id = models.BigIntegerField(verbose_name=_("order (id)"), db_comment="FaseOf_OfId")
    phase_id = models.BigIntegerField(verbose_name=_("phase (id)"), null=True, blank=True, db_comment="FaseOf_FaseId")
    started_at = models.DateTimeField(verbose_name=_("started at"), null=True, blank=True, db_comment="FaseOf_Inicio")
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True, db_comment="FaseOf_Fim")
    planned_at = models.DateTimeField(verbose_name=_("planned date"), null=True, blank=True, db_comment="FaseOf_DataPrevista")
    labour_coefficient = models.FloatField(verbose_name=_("labour coefficient"), null=True, blank=True, db_comment="FaseOf_Coeficiente")
    machine_coefficient = models.FloatField(verbose_name=_("machine coefficient"), null=True, blank=True, db_comment="FaseOf_CoeficienteX")
    weight_kg = models.FloatField(verbose_name=_("weight (kg)"), null=True, blank=True, db_comment="FaseOf_Peso")
    is_rework = models.BooleanField(verbose_name=_("rework"), default=False, db_comment="FaseOf_Retorno")
    shift = models.SmallIntegerField(verbose_name=_("shift"), null=True, blank=True, choices=Shift.choices, db_comment="FaseOf_Turno")
    sequence = models.IntegerField(verbose_name=_("sequence"), null=True, blank=True, db_comment="FaseOf_Sequencia")
    event_time = models.DateTimeField(verbose_name=_("event time"), help_text=_("Derived partition key: end, else start, else order creation."))
    duration_seconds = models.FloatField(verbose_name=_("duration (seconds)"), null=True, blank=True, help_text=_("Derived: end - start (elapsed, not labour)."))
    is_open = models.BooleanField(verbose_name=_("still open"), default=False, help_text=_("Derived: started, not ended."))
    is_done = models.BooleanField(verbose_name=_("ended"), default=False, help_text=_("Derived: ended."))

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return gettext("Phase %(id)s of OF %(order)s") % {"id": self.id, "order": self.order_id}


class OrderPhase(PostgresPartitionedModel, OrderPhaseColumns):
    """One phase of one order with its real start and end; sheet FasesOrdemFabrico.

    RANGE-partitioned by month of event_time (end, else start, else the order's creation),
    so the primary key is (id, event_time); ingestion keeps id unique."""

    class PartitioningMeta:
        method = PostgresPartitioningMethod.RANGE
        key = ["event_time"]

    pk = models.CompositePrimaryKey("id", "event_time")

    class Meta:
        verbose_name = _("order phase (FasesOrdemFabrico)")
        verbose_name_plural = _("order phases (FasesOrdemFabrico)")
        db_table_comment = "FasesOrdemFabrico"
        ordering = ["order_id", "sequence", "id"]
        indexes = [
            models.Index(fields=["order_id", "sequence", "id"], name="orders_op_order_seq_idx"),
            models.Index(fields=["phase_id", "event_time"], name="orders_op_phase_event_idx"),
            models.Index(fields=["phase_id"], name="orders_op_open_phase_idx", condition=models.Q(is_open=True)),
        ]


class OrderPhaseRecord(OrderPhaseColumns):
    """Read-only single-key view of the order-phase table for Django admin.

    Django 5.2's admin refuses composite primary keys; FaseOf_Id is unique on its own
    (ingestion rejects duplicates), so admin browses the same table through this model."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True, db_comment="FaseOf_Id")

    class Meta:
        managed = False
        db_table = "orders_orderphase"
        verbose_name = _("order phase (FasesOrdemFabrico)")
        verbose_name_plural = _("order phases (FasesOrdemFabrico)")
        ordering = ["order_id", "sequence", "id"]


class PhaseAssignmentColumns(models.Model):
    """The columns of FuncionariosFaseOrdemFabrico, shared by the table and its admin view."""

    id = models.BigIntegerField(verbose_name=_("id"), db_default=NextVal("orders_phaseassignment_id_seq"), editable=False)
    order_phase_id = models.BigIntegerField(verbose_name=_("order phase (id)"), db_comment="FuncionarioFaseOf_FaseOfId")
    employee_id = models.BigIntegerField(verbose_name=_("employee (id)"), db_comment="FuncionarioFaseOf_FuncionarioId")
    is_leader = models.BooleanField(verbose_name=_("team leader"), default=False, db_comment="FuncionarioFaseOf_Chefe")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return gettext("Employee %(employee)s on order phase %(phase)s") % {"employee": self.employee_id, "phase": self.order_phase_id}


class PhaseAssignment(PostgresPartitionedModel, PhaseAssignmentColumns):
    """An employee on an order phase; sheet FuncionariosFaseOrdemFabrico.

    HASH-partitioned by order_phase_id. order_phase_id matches an order phase on only
    about a third of real rows: kept, never enforced."""

    class PartitioningMeta:
        method = PostgresPartitioningMethod.HASH
        key = ["order_phase_id"]

    pk = models.CompositePrimaryKey("order_phase_id", "employee_id")

    class Meta:
        verbose_name = _("phase assignment (FuncionariosFaseOrdemFabrico)")
        verbose_name_plural = _("phase assignments (FuncionariosFaseOrdemFabrico)")
        db_table_comment = "FuncionariosFaseOrdemFabrico"
        ordering = ["order_phase_id", "employee_id"]
        indexes = [models.Index(fields=["employee_id"], name="orders_pa_employee_idx")]


class PhaseAssignmentRecord(PhaseAssignmentColumns):
    """Read-only single-key view of the assignment table for Django admin (see OrderPhaseRecord)."""

    id = models.BigIntegerField(verbose_name=_("id"), primary_key=True)

    class Meta:
        managed = False
        db_table = "orders_phaseassignment"
        verbose_name = _("phase assignment (FuncionariosFaseOrdemFabrico)")
        verbose_name_plural = _("phase assignments (FuncionariosFaseOrdemFabrico)")
        ordering = ["order_phase_id", "employee_id"]


# --- Aggregates (precomputed by orders.services.refresh_aggregates after every ingestion) ---------


class OrderSummary(models.Model):
    """Per-order counts and first start, so list and detail pages need no scan of the phase table."""

    order_id = models.BigIntegerField(verbose_name=_("order (id)"), primary_key=True)
    phase_count = models.IntegerField(verbose_name=_("phases"), default=0)
    started_count = models.IntegerField(verbose_name=_("phases started"), default=0)
    done_count = models.IntegerField(verbose_name=_("phases done"), default=0)
    rework_count = models.IntegerField(verbose_name=_("rework passes"), default=0)
    error_count = models.IntegerField(verbose_name=_("quality errors"), default=0)
    first_started_at = models.DateTimeField(verbose_name=_("first start"), null=True)
    last_ended_at = models.DateTimeField(verbose_name=_("last end"), null=True)

    class Meta:
        verbose_name = _("order summary (aggregate)")
        ordering = ["order_id"]

    def __str__(self) -> str:
        return gettext("OF %(order)s summary") % {"order": self.order_id}


class ProductPhaseStat(models.Model):
    """Observed duration of each phase per product (ended phases with a start), for route pages."""

    product_id = models.BigIntegerField(verbose_name=_("product (id)"))
    phase_id = models.BigIntegerField(verbose_name=_("phase (id)"))
    n = models.IntegerField(verbose_name=_("observations"))
    duration_p50_seconds = models.FloatField(verbose_name=_("median duration (seconds)"), null=True)
    duration_p90_seconds = models.FloatField(verbose_name=_("duration, 90th percentile (seconds)"), null=True)

    class Meta:
        verbose_name = _("product phase duration (aggregate)")
        ordering = ["product_id", "phase_id"]
        constraints = [models.UniqueConstraint(fields=["product_id", "phase_id"], name="orders_productphasestat_key")]

    def __str__(self) -> str:
        return gettext("Product %(product)s phase %(phase)s") % {"product": self.product_id, "phase": self.phase_id}


class OrderAbandonment(models.Model):
    """A data steward's mark that an open order was abandoned: kept in the data, hidden from planning.

    A row of its own (not a column of ManufacturingOrder), so a re-ingestion of the workbook never undoes it."""

    order_id = models.BigIntegerField(primary_key=True, verbose_name=_("order (Of_Id)"))
    reason = models.TextField(_("reason"), blank=True)
    marked_by = models.CharField(_("marked by"), max_length=150, blank=True,
                                 help_text=_("Username of the steward who marked it."))
    marked_at = models.DateTimeField(_("marked at"), auto_now_add=True)

    class Meta:
        verbose_name = _("abandoned order")
        verbose_name_plural = _("abandoned orders")
        ordering = ["-marked_at", "-order_id"]

    def __str__(self) -> str:
        return gettext("OF %(order)s abandoned") % {"order": self.order_id}


class BottleneckBacktest(models.Model):
    """One replay of the bottleneck ranking at weekly past dates, scored against the queue measured next.

    Written by `manage.py bottleneck_backtest`; the ranking's page and API show the latest score."""

    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    start = models.DateTimeField(verbose_name=_("start"), help_text=_("The first ranked date."))
    weeks = models.IntegerField(verbose_name=_("weeks"))
    horizon_days = models.IntegerField(verbose_name=_("horizon (days)"), help_text=_("How far ahead the measured queue decides the right #1."))
    scored_weeks = models.IntegerField(verbose_name=_("scored weeks"), help_text=_("Weeks with a ranking and with queue measured next."))
    hits = models.IntegerField(verbose_name=_("hits"), help_text=_("Weeks whose #1 was the phase with the most measured queue next."))
    data_as_of = models.DateTimeField(verbose_name=_("data as of"), null=True, help_text=_("The data's as-of time when the backtest ran."))
    weekly = models.JSONField(verbose_name=_("weekly detail"), default=list, help_text=_("Per week: date, predicted #1, actual #1, hit."))

    class Meta:
        verbose_name = _("bottleneck backtest")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(hits__lte=models.F("scored_weeks")),
                                   name="%(app_label)s_%(class)s_hits_within_weeks"),
        ]

    def __str__(self) -> str:
        return gettext("Bottleneck backtest %(id)s: %(hits)s/%(weeks)s") % {"id": self.id, "hits": self.hits, "weeks": self.scored_weeks}
