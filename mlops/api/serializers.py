"""Serializers of the mlops API: registry rows and prediction requests."""

from rest_framework import serializers

from mlops.models import ModelVersion
from prodplan.asof import AS_OF_HELP, AsOfField

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # the id columns


class ModelVersionSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "label", "name", "version", "algorithm", "active", "promotion_reason", "promotion_evidence", "data_version",
                  "data_as_of", "train_start", "validation_start", "test_start", "test_end", "rows", "metrics",
                  "residual_quantiles", "training_seconds", "seed", "artifact_path", "artifact_sha256",
                  "created_at"]


class PredictRequestSerializer(serializers.Serializer):
    order_id = serializers.IntegerField(required=False, min_value=BIGINT_MIN, max_value=BIGINT_MAX, help_text="Predict this order, from its features at creation.")
    features = serializers.DictField(
        required=False, help_text="Or a feature payload: family, product_id and any numeric feature "
        "(see GET /api/ml/models features); absent features count as missing.")
    as_of = AsOfField(
        help_text="The moment of the prediction (default: the data's as-of): "
        "with order_id, remaining time (ETA) is predicted from the order's state then, and only orders created "
        "(ETA: open) by then are found. " + AS_OF_HELP)

    def validate_features(self, value):
        """product_id, when given, is an integer id a bigint holds (10**30 is a 400 naming features.product_id)."""
        raw = value.get("product_id")
        if raw is None:
            return value
        try:
            product_id = int(raw)
        except (TypeError, ValueError, OverflowError):
            product_id = None
        if product_id is None or isinstance(raw, bool) or not BIGINT_MIN <= product_id <= BIGINT_MAX:
            raise serializers.ValidationError({"product_id": [f"Must be an integer from {BIGINT_MIN} to {BIGINT_MAX}."]})
        return value

    def validate(self, attrs):
        if (attrs.get("order_id") is None) == (attrs.get("features") is None):
            raise serializers.ValidationError("Give exactly one of order_id or features.")
        return attrs


class TrainRequestSerializer(serializers.Serializer):
    seed = serializers.IntegerField(required=False, default=0, min_value=0)
