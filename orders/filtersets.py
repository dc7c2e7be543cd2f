"""FilterSets of the orders domain (used by the API, the pages and the tests)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from orders.choices import OrderStatus, ProductFamily
from orders.models import ManufacturingOrder, Product
from orders.selectors import annotate_id_text, order_ids_matching


class ManufacturingOrderFilterSet(django_filters.FilterSet):
    """Filters of the order list; expects the queryset of orders.selectors.order_queryset (status annotated)."""

    status = django_filters.MultipleChoiceFilter(
        choices=OrderStatus.choices, help_text="Order status at the as-of time (repeatable)."
    )
    product = django_filters.NumberFilter(field_name="product_id", help_text="Product id (Of_ProdutoId).")
    family = django_filters.ChoiceFilter(
        choices=ProductFamily.choices, method="filter_family",
        help_text="Product family; UNKNOWN selects orders whose product is not in the catalogue.",
    )
    current_phase = django_filters.NumberFilter(field_name="current_phase_id", help_text="Current phase id (Of_FaseId).")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    finished_after = django_filters.IsoDateTimeFilter(field_name="finished_at", lookup_expr="gte")
    finished_before = django_filters.IsoDateTimeFilter(field_name="finished_at", lookup_expr="lt")
    q = django_filters.CharFilter(method="filter_q", help_text="Search by order id (exact, or ids starting with these digits).")

    class Meta:
        model = ManufacturingOrder
        fields = ["status", "product", "family", "current_phase"]

    def filter_family(self, queryset, name, value):
        known = Product.objects.values("id")
        if value == ProductFamily.UNKNOWN:
            return queryset.filter(Q(product_id__isnull=True) | ~Q(product_id__in=known))
        return queryset.filter(product_id__in=known.filter(family=value))

    def filter_q(self, queryset, name, value):
        return annotate_id_text(queryset).filter(order_ids_matching(value))
