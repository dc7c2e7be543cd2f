"""FilterSets of the orders domain (used by the API, the pages and the tests)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from orders.choices import OrderState, OrderStatus, ProductFamily
from orders.models import ManufacturingOrder, Product
from orders.selectors import annotate_id_text, order_ids_matching, order_ids_where
from prodplan.asof import data_as_of
from prodplan.filters import StorableIsoDateTimeFilter


class ManufacturingOrderFilterSet(django_filters.FilterSet):
    """Filters of the order list over orders.selectors.order_queryset(as_of); state, status and phase are the
    order state at as_of (pass as_of=; default the data's as-of)."""

    status = django_filters.MultipleChoiceFilter(
        choices=OrderStatus.choices, method="filter_state_column",
        help_text="Order status at the as-of time (repeatable).",
    )
    state = django_filters.MultipleChoiceFilter(
        choices=OrderState.choices, method="filter_state_column",
        help_text="Order state at the as-of time (repeatable): not_started, waiting, in_progress, stalled, abandoned, finished.",
    )
    product = django_filters.NumberFilter(field_name="product_id", help_text="Product id (Of_ProdutoId).")
    family = django_filters.ChoiceFilter(
        choices=ProductFamily.choices, method="filter_family",
        help_text="Product family; UNKNOWN selects orders whose product is not in the catalogue.",
    )
    current_phase = django_filters.NumberFilter(
        method="filter_state_column", help_text="Phase id where the order is (in progress) or waits, at the as-of time.")
    created_after = StorableIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StorableIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    finished_after = StorableIsoDateTimeFilter(field_name="finished_at", lookup_expr="gte")
    finished_before = StorableIsoDateTimeFilter(field_name="finished_at", lookup_expr="lt")
    q = django_filters.CharFilter(method="filter_q", help_text="Search by order id (exact, or ids starting with these digits).")

    class Meta:
        model = ManufacturingOrder
        fields = ["status", "state", "product", "family", "current_phase"]

    def __init__(self, *args, as_of=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.as_of = as_of or data_as_of()

    def filter_state_column(self, queryset, name, value):
        if value in (None, "", []):
            return queryset
        column = {"status": "status", "state": "state", "current_phase": "phase_id"}[name]
        values = [int(value)] if name == "current_phase" else list(value)
        return queryset.filter(id__in=order_ids_where(as_of=self.as_of, column=column, values=values))

    def filter_family(self, queryset, name, value):
        known = Product.objects.values("id")
        if value == ProductFamily.UNKNOWN:
            return queryset.filter(Q(product_id__isnull=True) | ~Q(product_id__in=known))
        return queryset.filter(product_id__in=known.filter(family=value))

    def filter_q(self, queryset, name, value):
        return annotate_id_text(queryset).filter(order_ids_matching(value))
