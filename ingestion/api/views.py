"""Ingestion API: start a run (202), poll its status, read its report."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion.api.serializers import (
    IngestionRequestSerializer,
    RunAcceptedSerializer,
    RunConflictSerializer,
    RunReportSerializer,
    RunStatusSerializer,
)
from ingestion.choices import RunTrigger
from ingestion.models import IngestionRun
from ingestion.selectors import run_report
from ingestion.services import AlreadyRunning, ingestion_enqueue, ingestion_start, runs_fail_dead
from ingestion.uploads import UploadRejected
from prodplan.api_keys import HasApiKeyOrStaff
from prodplan.api_serializers import DetailSerializer, UnavailableSerializer
from prodplan.parsers import JSONParser


class IngestionRunView(APIView):
    permission_classes = [HasApiKeyOrStaff]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": IngestionRequestSerializer, "application/json": IngestionRequestSerializer},
        responses={202: RunAcceptedSerializer, 400: DetailSerializer, 409: RunConflictSerializer, 503: UnavailableSerializer},
        summary="Upload a workbook (or name one in the inbox) and ingest it as a background task",
    )
    def post(self, request):
        serializer = IngestionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            run = ingestion_start(trigger=RunTrigger.API, uploaded=data.get("file") or None, inbox_name=data.get("inbox_name", ""),
                                  allow_shrink=data["allow_shrink"])
        except UploadRejected as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except AlreadyRunning as exc:
            return Response({"detail": str(exc), "run_id": exc.run_id}, status=status.HTTP_409_CONFLICT)
        ingestion_enqueue(run_id=run.pk)  # the run is committed; a broker outage fails it and answers 503
        return Response(
            {"run_id": run.pk, "status": "pending", "status_url": f"/api/ingestion/status/{run.pk}", "report_url": f"/api/ingestion/report/{run.pk}"},
            status=status.HTTP_202_ACCEPTED,
        )


class IngestionStatusView(APIView):
    # Reads of the ingestion audit (file names, errors) need a session or an API key (DESIGN: factory data is not public).
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=RunStatusSerializer, summary="Status and live per-sheet progress of a run")
    def get(self, request, run_id: int):
        runs_fail_dead()  # a run whose worker died reads "failed", not "running" forever
        run = get_object_or_404(IngestionRun, pk=run_id)
        return Response(RunStatusSerializer(run).data)


class IngestionReportView(APIView):
    # File name and hash, rejects and the profile: a session or an API key (an ApiKeyClient is authenticated).
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=RunReportSerializer, summary="Counts, rejects by reason, data-quality issues, timings and profile of a run")
    def get(self, request, run_id: int):
        run = get_object_or_404(IngestionRun, pk=run_id)
        return Response(run_report(run))
