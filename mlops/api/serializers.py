"""Serializers of the mlops API: registry rows and prediction requests."""

from rest_framework import serializers

from mlops.models import ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "label", "name", "version", "algorithm", "active", "promotion_reason", "data_version",
                  "data_as_of", "train_start", "validation_start", "test_start", "test_end", "rows", "metrics",
                  "residual_quantiles", "training_seconds", "seed", "artifact_path", "artifact_sha256",
                  "created_at"]


class PredictRequestSerializer(serializers.Serializer):
    order_id = serializers.IntegerField(required=False, help_text="Predict this order, from its features at creation.")
    features = serializers.DictField(
        required=False, help_text="Or a feature payload: family, product_id and any numeric feature "
        "(see GET /api/ml/models features); absent features count as missing.")

    def validate(self, attrs):
        if (attrs.get("order_id") is None) == (attrs.get("features") is None):
            raise serializers.ValidationError("Give exactly one of order_id or features.")
        return attrs


class TrainRequestSerializer(serializers.Serializer):
    seed = serializers.IntegerField(required=False, default=0, min_value=0)
