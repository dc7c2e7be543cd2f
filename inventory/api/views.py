"""Thin DRF views of SmartInventory: validate parameters, resolve as-of, call the (cached) selector."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory import selectors
from inventory.api.serializers import (
    GelcoatQuerySerializer,
    GelcoatResponseSerializer,
    PhaseGateNotSupportedSerializer,
    UnsupportedFeatureSerializer,
    WipMassResponseSerializer,
    WipResponseSerializer,
)
from prodplan.api_serializers import one_of
from prodplan.api_views import CachedAnalyticView
from prodplan.asof import AsOfQuerySerializer

WIP_MASS_RESPONSE = one_of("WipMassAnswer", WipMassResponseSerializer, PhaseGateNotSupportedSerializer)
GELCOAT_RESPONSE = one_of("GelcoatAnswer", GelcoatResponseSerializer, PhaseGateNotSupportedSerializer)


class _InventoryView(CachedAnalyticView):
    query_serializer = AsOfQuerySerializer


@extend_schema(tags=["smartinventory"], parameters=[AsOfQuerySerializer], responses=WipResponseSerializer,
               summary="WIP orders at the as-of date by phase and by product/family")
class WipView(_InventoryView):
    def compute(self, *, as_of):
        return selectors.wip(as_of=as_of)


@extend_schema(tags=["smartinventory"], parameters=[AsOfQuerySerializer], responses=WIP_MASS_RESPONSE,
               summary="Theoretical mass in process (demould weight before demoulding, finished weight after)")
class WipMassView(_InventoryView):
    def compute(self, *, as_of):
        return selectors.wip_mass(as_of=as_of)


@extend_schema(tags=["smartinventory"], parameters=[GelcoatQuerySerializer], responses=GELCOAT_RESPONSE,
               summary="Theoretical gelcoat use per week or month (product standards, not a consumption)")
class GelcoatTheoreticalUsageView(_InventoryView):
    query_serializer = GelcoatQuerySerializer

    def compute(self, *, as_of, period="month"):
        return selectors.gelcoat_theoretical_usage(as_of=as_of, period=period)


class UnsupportedFeatureView(APIView):
    """NOT_SUPPORTED_BY_DATA (HTTP 200) for an inventory feature the workbook cannot back."""

    feature = ""

    @extend_schema(tags=["smartinventory"], responses=UnsupportedFeatureSerializer,
                   summary="Not supported by the data: names the missing data")
    def get(self, request):
        return Response(selectors.unsupported_feature(feature=self.feature))
