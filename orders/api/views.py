"""Thin DRF views of the PRODPLAN and KPI API; the logic lives in orders.selectors."""

from __future__ import annotations

from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import selectors
from orders.api.serializers import (
    BottlenecksResponseSerializer,
    KpiByEmployeeNotSupportedSerializer,
    KpiByEmployeeResponseSerializer,
    KpiByPhaseResponseSerializer,
    KpiByProductResponseSerializer,
    KpiOverviewResponseSerializer,
    KpiRangeQuerySerializer,
    OrderDetailSerializer,
    OrderSerializer,
    OrderStatesResponseSerializer,
    OrderTimelineSerializer,
    RiskQuerySerializer,
    RiskQueueResponseSerializer,
    RouteResponseSerializer,
    ScheduleCurrentResponseSerializer,
    StalledOrdersResponseSerializer,
)
from orders.filtersets import ManufacturingOrderFilterSet
from orders.models import ManufacturingOrder
from prodplan.api_serializers import one_of
from prodplan.asof import AsOfQuerySerializer, resolve_as_of
from prodplan.cache import versioned_cache
from prodplan.pagination import ValidatedCursorPagination

DATE_FROM = OpenApiParameter("date_from", OpenApiTypes.DATE, OpenApiParameter.QUERY, required=False,
                             description="First day of the window (inclusive); default 12 weeks before date_to.")
DATE_TO = OpenApiParameter("date_to", OpenApiTypes.DATE, OpenApiParameter.QUERY, required=False,
                           description="Last day of the window (inclusive); default the as-of date.")
TAGS = ["prodplan"]
KPI_TAGS = ["kpis"]


_SERIALIZERS: dict[type, object] = {}


def _serialized(serializer_class, payload: dict | None) -> dict:
    """The serializer's output of a selector payload ({} for none).

    One instance per class, reused: a new DRF serializer deep-copies its declared fields, which cost
    ~3 ms per order timeline against ~0.9 ms for to_representation on a bound instance (same output)."""
    if not payload:
        return {}
    serializer = _SERIALIZERS.get(serializer_class)
    if serializer is None:
        serializer = _SERIALIZERS.setdefault(serializer_class, serializer_class())
    return dict(serializer.to_representation(payload))


class AsOfFilterBackend(DjangoFilterBackend):
    """django-filter's backend, giving the FilterSet the view's as-of (state, status and phase filters need it)."""

    def get_filterset_kwargs(self, request, queryset, view):
        return {**super().get_filterset_kwargs(request, queryset, view), "as_of": getattr(view, "as_of", None)}


class OrderCursorPagination(ValidatedCursorPagination):
    """Keyset pagination on the order id (newest first): no OFFSET, stable under inserts."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@versioned_cache("orders.api_order_list", ignore=("view",))
def _order_list_page(*, view: OrderListView, as_of, query: list[tuple[str, str]], host: str) -> dict:
    """One page of the order list as the API answers it, cached per request line: the query (filters, cursor, page
    size) and the host (the page's next/previous links) at as_of. The filtering and the cursor need the request,
    so the view computes the page (OrderListView.page)."""
    return view.page()


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=OrderSerializer(many=True),
               summary="Manufacturing orders with status, age or lead time (cursor-paginated).")
class OrderListView(generics.ListAPIView):
    response_cache = True  # prodplan.response_cache: the answer depends on the request line and data version only
    pagination_class = OrderCursorPagination
    filter_backends = [AsOfFilterBackend]
    filterset_class = ManufacturingOrderFilterSet
    serializer_class = OrderSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no as-of
            return ManufacturingOrder.objects.none()
        return selectors.order_queryset(as_of=self.as_of)

    def list(self, request, *args, **kwargs):
        self.as_of = resolve_as_of(request.query_params)
        query = sorted((k, v) for k in request.query_params for v in request.query_params.getlist(k))
        return Response(_order_list_page(view=self, as_of=self.as_of, query=query, host=request.get_host()))

    def page(self) -> dict:
        queryset = self.filter_queryset(self.get_queryset()).values(*selectors.ORDER_FIELDS)
        rows = self.paginate_queryset(queryset)
        data = OrderSerializer(selectors.order_rows(as_of=self.as_of, rows=list(rows)), many=True).data
        return self.get_paginated_response(data).data


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=OrderDetailSerializer,
               summary="One order: status, thresholds, counts of phases, reworks and errors.")
class OrderDetailView(APIView):
    response_cache = True

    def get(self, request, of_id: int):
        as_of = resolve_as_of(request.query_params)
        # Not in the payload cache: one prepared lookup is cheaper than its cache round trips, and anonymous
        # repeats are answered by the rendered-response cache (prodplan.response_cache).
        payload = _serialized(OrderDetailSerializer, selectors.order_detail(order_id=of_id, as_of=as_of))
        if not payload:
            raise Http404("No such order.")
        return Response(payload)


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=OrderTimelineSerializer,
               summary="The order's phase timeline and its comparison with the product's standard route.")
class OrderPhasesView(APIView):
    response_cache = True

    def get(self, request, of_id: int):
        payload = _serialized(OrderTimelineSerializer, selectors.order_phases(order_id=of_id, as_of=resolve_as_of(request.query_params)))
        if not payload:
            raise Http404("No such order.")
        return Response(payload)


@extend_schema(tags=TAGS, responses=RouteResponseSerializer,
               summary="Standard route of a product with observed step durations and route conformance.",
               description="Per step: observed median and p90 duration (hours) of the product's ended phases and n. "
               "Conformance over the product's finished orders: shares that followed the route, skipped steps, ran "
               "them out of order, looped back (rework pass or repeated phase), or added steps; most common deviations.")
class RouteView(APIView):
    response_cache = True

    def get(self, request, produto_id: int):
        return Response(selectors.route(product_id=produto_id))


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=OrderStatesResponseSerializer,
               summary="How many orders are in each state at the as-of time, how open orders are placed, stall thresholds.",
               description=selectors.ORDER_STATE_RULE)
class OrderStatesView(APIView):
    response_cache = True

    def get(self, request):
        return Response(selectors.state_summary(as_of=resolve_as_of(request.query_params)))


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=StalledOrdersResponseSerializer,
               summary="Stalled orders at the as-of time, longest idle first.",
               description="Open orders with no event for longer than their position's stall threshold (learnt from "
               "the gaps measured before as-of, floor in the response); out of WIP, flow KPIs and the risk queue.")
class StalledOrdersView(APIView):
    response_cache = True

    def get(self, request):
        as_of = resolve_as_of(request.query_params)
        return Response({"as_of": as_of, **selectors.stalled_block(as_of=as_of)})


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=ScheduleCurrentResponseSerializer,
               summary="WIP at the as-of time per phase from the order state; stalled orders apart.",
               description=selectors.ORDER_STATE_RULE + " WIP counts active orders (not stalled, not abandoned). "
               "Ages are as-of minus creation, in days.")
class ScheduleCurrentView(APIView):
    response_cache = True

    def get(self, request):
        return Response(selectors.schedule_current(as_of=resolve_as_of(request.query_params)))


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer], responses=BottlenecksResponseSerializer,
               summary="Bottleneck phases ranked by the queue forecast for the next 4 weeks; top bottleneck week by "
                       "week (12 weeks).",
               description=selectors.bottleneck_rule() + " 'backtest' is the latest `manage.py bottleneck_backtest` score.")
class BottlenecksView(APIView):
    response_cache = True

    def get(self, request):
        return Response(selectors.bottlenecks(as_of=resolve_as_of(request.query_params)))


@extend_schema(tags=TAGS, parameters=[AsOfQuerySerializer, RiskQuerySerializer], responses=RiskQueueResponseSerializer,
               summary="Open orders ranked by risk score with reasons.", description=selectors.RISK_METHOD)
class RiskQueueView(APIView):
    response_cache = True

    def get(self, request):
        query = RiskQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.risk_queue(as_of=resolve_as_of(request.query_params), limit=query.validated_data["limit"]))


class _KpiView(APIView):
    selector = None
    response_cache = True

    def get(self, request):
        query = KpiRangeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(type(self).selector(as_of=resolve_as_of(request.query_params), **query.validated_data))


KPI_BY_EMPLOYEE_RESPONSE = one_of("KpiByEmployeeAnswer", KpiByEmployeeResponseSerializer, KpiByEmployeeNotSupportedSerializer)

KPI_DESCRIPTION = (
    "For orders finished in [date_from, date_to]: lead time p50/p90/mean (days), throughput per week, on-time "
    "rate against the product's historical p75 lead time (basis theoretical: no due date in the data), rework "
    "rate (orders with a rework pass); WIP count and ages at the window's end (capped at as-of)."
)


@extend_schema(tags=KPI_TAGS, parameters=[AsOfQuerySerializer, DATE_FROM, DATE_TO], responses=KpiOverviewResponseSerializer,
               summary="Factory KPIs for a date range.", description=KPI_DESCRIPTION)
class KpiOverviewView(_KpiView):
    selector = staticmethod(selectors.kpi_overview)


@extend_schema(tags=KPI_TAGS, parameters=[AsOfQuerySerializer, DATE_FROM, DATE_TO], responses=KpiByPhaseResponseSerializer,
               summary="KPIs per phase for a date range.",
               description="Per phase, for phases ended in the window: duration p50/p90/mean (hours), throughput per "
               "week, rework share of executions; WIP and time in state at the window's end.")
class KpiByPhaseView(_KpiView):
    selector = staticmethod(selectors.kpi_by_phase)


@extend_schema(tags=KPI_TAGS, parameters=[AsOfQuerySerializer, DATE_FROM, DATE_TO], responses=KpiByProductResponseSerializer,
               summary="KPIs per product for a date range.", description=KPI_DESCRIPTION)
class KpiByProductView(_KpiView):
    selector = staticmethod(selectors.kpi_by_product)


@extend_schema(tags=KPI_TAGS, responses=KPI_BY_EMPLOYEE_RESPONSE,
               summary="Per-employee figures, only when assignments match order phases.",
               description="NOT_SUPPORTED_BY_DATA (HTTP 200, with the measured match rate) while the share of "
               "assignments pointing at a known order phase is under settings.EMPLOYEE_MATCH_RATE_GATE. Otherwise "
               "phases worked and elapsed hours of those phases (not labour hours). Names only for users with the "
               "orders.view_employee_name permission.")
class KpiByEmployeeView(APIView):
    def get(self, request):
        user = request.user
        include_names = bool(user and user.is_authenticated and user.has_perm("orders.view_employee_name"))
        return Response(selectors.kpi_by_employee(include_names=include_names))
