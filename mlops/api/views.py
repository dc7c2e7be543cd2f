"""Thin DRF views of the mlops API: train (async), registry, predict, explain."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops import selectors
from mlops.api.serializers import (
    ExplanationSerializer,
    ModelVersionSerializer,
    PredictionSerializer,
    PredictRequestSerializer,
    TrainAcceptedSerializer,
    TrainRequestSerializer,
)
from mlops.choices import ModelName
from mlops.tasks import train_model_task
from prodplan.api_keys import HasApiKeyOrSupervisorRole
from prodplan.api_serializers import UnavailableSerializer
from prodplan.asof import AsOfQuerySerializer, resolve_as_of
from prodplan.pagination import ValidatedCursorPagination
from prodplan.task_queue import enqueue


class TrainView(APIView):
    """Queue the training of one target (baseline, HistGradientBoosting, MLP) and its promotion."""

    permission_classes = [HasApiKeyOrSupervisorRole]
    model_name = ModelName.LEAD_TIME

    @extend_schema(request=TrainRequestSerializer, responses={202: TrainAcceptedSerializer, 503: UnavailableSerializer})
    def post(self, request):
        payload = TrainRequestSerializer(data=request.data or {})
        payload.is_valid(raise_exception=True)
        result = enqueue(train_model_task, str(self.model_name), payload.validated_data["seed"])  # 503 if no broker
        body = {"task_id": result.id, "name": str(self.model_name), "state": result.state}
        if result.ready():  # eager mode (no Redis): the task already ran in this process
            body["result"] = result.result
        return Response(body, status=status.HTTP_202_ACCEPTED)


class RegistryPagination(ValidatedCursorPagination):
    ordering = "-id"
    page_size = 50


class ModelVersionListView(generics.ListAPIView):
    """The model registry: every trained version with its metrics and why it was (not) promoted."""

    serializer_class = ModelVersionSerializer
    pagination_class = RegistryPagination
    filterset_fields = ["name", "algorithm", "active"]

    def get_queryset(self):
        return selectors.model_versions()


class PredictView(APIView):
    """Predict for an order id or a feature payload; the answer names the model (or the baseline)."""

    model_name = ModelName.LEAD_TIME

    @extend_schema(request=PredictRequestSerializer, responses={200: PredictionSerializer})
    def post(self, request):
        payload = PredictRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        as_of = payload.validated_data.get("as_of")
        try:
            answer = selectors.predict(name=self.model_name, order_id=payload.validated_data.get("order_id"),
                                       features=payload.validated_data.get("features"), as_of=as_of)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationError({"features": str(exc)}) from exc
        if answer is None:
            raise NotFound(_not_found(self.model_name, as_of))
        return Response(answer)


class ExplainView(APIView):
    """Global permutation importance of the answering model; with of_id, that prediction's contributions."""

    model_name = ModelName.LEAD_TIME

    @extend_schema(parameters=[OpenApiParameter("of_id", int, description="Order id to explain."), AsOfQuerySerializer],
                   responses={200: ExplanationSerializer})
    def get(self, request):
        as_of = resolve_as_of(request.query_params, strict=True)  # 400 naming as_of before anything is read
        raw = request.query_params.get("of_id")
        try:
            order_id = int(raw) if raw not in (None, "") else None
            if order_id is not None and not -(2**63) <= order_id < 2**63:  # the id column is a bigint
                raise ValueError(raw)
        except ValueError as exc:
            raise ValidationError({"of_id": "must be an integer"}) from exc
        answer = selectors.explain(name=self.model_name, order_id=order_id, as_of=as_of)
        if answer is None:
            raise NotFound(_not_found(self.model_name, as_of))
        return Response(answer)


def _not_found(model_name: str, as_of) -> str:
    when = "as_of" if as_of is not None else "the data's as-of date"
    if model_name == ModelName.ETA:
        return f"No open order with that id at {when} (created by then, not finished, not abandoned)."
    if as_of is not None:
        return "No order with that id created by as_of (or it has no creation date)."
    return "No order with that id (or it has no creation date)."
