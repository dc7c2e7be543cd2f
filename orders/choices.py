"""Choices of the orders domain."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ProductFamily(models.TextChoices):
    K1 = "K1", _("K1 kayak")
    K2 = "K2", _("K2 kayak")
    K4 = "K4", _("K4 kayak")
    C1 = "C1", _("C1 canoe")
    C2 = "C2", _("C2 canoe")
    C4 = "C4", _("C4 canoe")
    OTHER = "OTHER", pgettext_lazy("product family", "Other")
    UNKNOWN = "UNKNOWN", _("Unknown product")


class OrderStatus(models.TextChoices):
    DONE = "DONE", _("Done")
    CREATED = "CREATED", _("Created (no phase started)")
    IN_PROGRESS = "IN_PROGRESS", _("On track (open, within the lead-time thresholds)")
    AT_RISK = "AT_RISK", _("At risk (older than the product's p75 lead time)")
    LATE = "LATE", _("Late (older than the product's p90 lead time)")
    STALLED = "STALLED", _("Stalled (no event for longer than its position's threshold)")
    ABANDONED = "ABANDONED", _("Abandoned (marked by a data steward)")


class OrderState(models.TextChoices):
    """Where an order is at an as-of time (orders.selectors.ORDER_STATE_RULE); one of these, always."""

    NOT_STARTED = "not_started", _("Not started")
    WAITING = "waiting", _("Waiting")
    IN_PROGRESS = "in_progress", _("In progress")
    STALLED = "stalled", _("Stalled")
    ABANDONED = "abandoned", _("Abandoned")
    FINISHED = "finished", pgettext_lazy("order state", "Finished")


class PlacementBasis(models.TextChoices):
    """What an open order's position (its phase) stands on, strongest first."""

    PHASE_IN_PROGRESS = "phase_in_progress", _("Phase in progress")
    NEXT_PHASE_ROW = "next_phase_row", _("Next phase row not started")
    ROUTE_NEXT_STEP = "route_next_step", _("Next step of the standard route")
    OBSERVED_NEXT_PHASE = "observed_next_phase", _("The phase that most often follows the last one finished")
    ERP_CURRENT_PHASE = "erp_current_phase", _("The ERP's current phase (snapshot date only)")
    UNKNOWN = "unknown", _("Unknown")
    NONE = "none", _("None (finished)")


class Shift(models.IntegerChoices):
    FIRST = 1, _("Shift 1")
    SECOND = 2, _("Shift 2")
    THIRD = 3, _("Shift 3")
