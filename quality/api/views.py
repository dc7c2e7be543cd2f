"""Thin DRF views of the quality analytics: validate parameters, resolve as-of, call the (cached) selector."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from prodplan.api_serializers import NotSupportedSerializer, one_of
from prodplan.api_views import CachedAnalyticView
from prodplan.asof import AsOfQuerySerializer
from quality import selectors
from quality.api.serializers import (
    OverviewQuerySerializer,
    PeriodQuerySerializer,
    QualityByPhaseResponseSerializer,
    QualityByProductResponseSerializer,
    QualityEscapesResponseSerializer,
    QualityHeatmapResponseSerializer,
    QualityOverviewResponseSerializer,
    QualityRiskResponseSerializer,
    QualityRiskTableResponseSerializer,
    RiskQuerySerializer,
)

HEATMAP_RESPONSE = one_of("QualityHeatmapAnswer", QualityHeatmapResponseSerializer, NotSupportedSerializer)
ESCAPES_RESPONSE = one_of("QualityEscapesAnswer", QualityEscapesResponseSerializer, NotSupportedSerializer)
RISK_RESPONSE = one_of("QualityRiskAnswer", QualityRiskResponseSerializer, QualityRiskTableResponseSerializer)


class _QualityView(CachedAnalyticView):
    query_serializer = AsOfQuerySerializer


@extend_schema(tags=["quality"], parameters=[OverviewQuerySerializer], responses=QualityOverviewResponseSerializer,
               summary="Quality overview: totals, errors per order, severity, found/culprit phase, trend, Pareto")
class OverviewView(_QualityView):
    query_serializer = OverviewQuerySerializer

    def compute(self, *, as_of, top=20, date_from=None, date_to=None):
        since, until = selectors.period_bounds(date_from, date_to)
        return selectors.quality_overview(as_of=as_of, top=top, since=since, until=until)


@extend_schema(tags=["quality"], parameters=[AsOfQuerySerializer], responses=QualityByPhaseResponseSerializer,
               summary="Error rate per phase execution (found there / caused there) with severity split")
class ByPhaseView(_QualityView):
    def compute(self, *, as_of):
        return selectors.quality_by_phase(as_of=as_of)


@extend_schema(tags=["quality"], parameters=[PeriodQuerySerializer], responses=QualityByProductResponseSerializer,
               summary="Errors per order and first-pass yield per product and family (orders created in the period)")
class ByProductView(_QualityView):
    query_serializer = PeriodQuerySerializer

    def compute(self, *, as_of, date_from=None, date_to=None):
        since, until = selectors.period_bounds(date_from, date_to)
        return selectors.quality_by_product(as_of=as_of, since=since, until=until)


@extend_schema(tags=["quality"], parameters=[PeriodQuerySerializer], responses=HEATMAP_RESPONSE,
               summary="Heatmap: phase where found x culprit phase (errors with a culprit, dated in the period)")
class HeatmapView(_QualityView):
    query_serializer = PeriodQuerySerializer

    def compute(self, *, as_of, date_from=None, date_to=None):
        since, until = selectors.period_bounds(date_from, date_to)
        return selectors.quality_heatmap(as_of=as_of, since=since, until=until)


@extend_schema(tags=["quality"], parameters=[AsOfQuerySerializer], responses=ESCAPES_RESPONSE,
               summary="Defect escape: phases, hours and mass from culprit phase to detection")
class EscapesView(_QualityView):
    def compute(self, *, as_of):
        return selectors.quality_escapes(as_of=as_of)


@extend_schema(tags=["quality"], parameters=[RiskQuerySerializer], responses=RISK_RESPONSE,
               summary="Baseline defect risk (Wilson 95%): for one phase with product -> family -> factory fallback, or "
                       "without phase the table by family and phase")
class RiskView(_QualityView):
    query_serializer = RiskQuerySerializer

    def compute(self, *, as_of, phase=None, severity=1, product=None, family=None, attribution="found", min_sample=30):
        if phase is None:
            return selectors.quality_risk_table(as_of=as_of, severity=int(severity), product_id=product, family=family,
                                                attribution=attribution, min_sample=min_sample)
        return selectors.quality_risk(as_of=as_of, phase_id=phase, severity=int(severity), product_id=product,
                                      family=family, attribution=attribution, min_sample=min_sample)
