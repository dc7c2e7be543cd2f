"""What-if API: simulate a scenario (stored, idempotent), fetch a run, list runs."""

from __future__ import annotations

from collections.abc import Mapping

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from prodplan.api_keys import HasApiKeyOrStaff
from prodplan.asof import resolve_as_of
from prodplan.pagination import ValidatedCursorPagination
from whatif.api.serializers import RunListSerializer, RunSerializer, ScenarioSerializer
from whatif.choices import RunStatus
from whatif.models import WhatIfRun
from whatif.selectors import latest_backtest, run_list
from whatif.services import canonical_inputs, whatif_run_request


def _run_response(run: WhatIfRun, *, code: int) -> Response:
    return Response(RunSerializer(run, context={"backtest": latest_backtest()}).data, status=code)


class SimulateView(APIView):
    permission_classes = [HasApiKeyOrStaff]

    @extend_schema(
        request=ScenarioSerializer,
        responses={200: RunSerializer, 201: RunSerializer, 202: RunSerializer,
                   400: OpenApiResponse(description="Invalid inputs, checked before any stored run is looked up: "
                                                       "{field path: [message naming the field]}, e.g. "
                                                       "capacity_overrides[0].servers (whatif.validation)")},
        summary="Simulate a what-if scenario against the baseline over the WIP at as-of",
        description="The same scenario on the same data version returns the stored run (200) without "
                    "recomputing; a new one is computed (201), or queued as a Celery task (202) when "
                    "run_async is set or the horizon is long. Figures are theoretical (a simulation).",
    )
    def post(self, request):
        # the one as_of rule first (400 naming the accepted range); a body that is not an object is the serializer's
        body = request.data if isinstance(request.data, Mapping) else None
        resolve_as_of(body, strict=True)
        ser = ScenarioSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        run_async = data.pop("run_async", False)
        data.pop("as_of", None)
        as_of = resolve_as_of(body)  # given, else the data's as-of, else the clock
        inputs = canonical_inputs(validated=data, as_of=as_of)
        run, computed = whatif_run_request(inputs=inputs, run_async=run_async)
        if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
            code = status.HTTP_202_ACCEPTED
        else:
            code = status.HTTP_201_CREATED if computed else status.HTTP_200_OK
        return _run_response(run, code=code)


class ResultView(APIView):
    @extend_schema(responses={200: RunSerializer}, summary="A stored what-if run with its outputs and the latest backtest")
    def get(self, request, whatif_id: int):
        return _run_response(get_object_or_404(WhatIfRun, pk=whatif_id), code=200)


class RunCursorPagination(ValidatedCursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class RunListView(generics.ListAPIView):
    serializer_class = RunListSerializer
    pagination_class = RunCursorPagination
    filter_backends: list = []

    def get_queryset(self):
        return run_list()

    @extend_schema(summary="What-if runs, newest first (cursor pagination)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
