"""Serializers of the mlops API: registry rows and prediction requests."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlops.choices import ModelName
from mlops.models import ModelVersion
from prodplan.asof import AS_OF_HELP, AsOfField

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # the id columns


@extend_schema_field({"type": "object", "additionalProperties": {"type": "integer", "nullable": True},
                      "properties": {"censor_cutoff": {"type": "string", "format": "date-time", "nullable": True}}})
class SplitRowsField(serializers.JSONField):
    """Rows per split (train, validation, test...) and the censoring cut-off of the dataset."""


class CalibrationBinSerializer(serializers.Serializer):
    bin = serializers.CharField()
    n = serializers.IntegerField()
    mean_predicted = serializers.FloatField()
    observed_rate = serializers.FloatField()


class SplitMetricsSerializer(serializers.Serializer):
    """One split's metrics: regression (mae, mape, p90_abs_error; days) or classification (roc_auc, brier, base
    rate, calibration bins)."""

    n = serializers.IntegerField()
    mae = serializers.FloatField(required=False, allow_null=True)
    mape = serializers.FloatField(required=False, allow_null=True)
    p90_abs_error = serializers.FloatField(required=False, allow_null=True)
    roc_auc = serializers.FloatField(required=False, allow_null=True)
    brier = serializers.FloatField(required=False, allow_null=True)
    base_rate = serializers.FloatField(required=False, allow_null=True)
    calibration = CalibrationBinSerializer(many=True, required=False)


@extend_schema_field(serializers.DictField(child=SplitMetricsSerializer(), help_text="Split (validation, test, "
                                           "baseline_validation...) -> its metrics."))
class MetricsField(serializers.JSONField):
    """The stored metrics, as stored."""


class PromotionCheckSerializer(serializers.Serializer):
    code = serializers.CharField()
    ok = serializers.BooleanField()
    reference = serializers.CharField(required=False)


class MarginIntervalSerializer(serializers.Serializer):
    """The paired bootstrap interval of the validation margin (candidate against reference)."""

    candidate = serializers.FloatField(allow_null=True)
    reference = serializers.FloatField(allow_null=True)
    margin = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    excludes_zero = serializers.BooleanField()
    confidence = serializers.FloatField()
    n = serializers.IntegerField()
    groups = serializers.IntegerField(allow_null=True)
    resamples = serializers.IntegerField()
    resamples_used = serializers.IntegerField()
    seed = serializers.IntegerField()


class TestComparisonSerializer(serializers.Serializer):
    candidate = serializers.FloatField(allow_null=True)
    reference = serializers.FloatField(allow_null=True)
    margin = serializers.FloatField(allow_null=True)
    tolerance = serializers.FloatField()
    not_worse = serializers.BooleanField()


class ComparisonSerializer(serializers.Serializer):
    reference = serializers.CharField()
    reference_id = serializers.IntegerField()
    reference_kind = serializers.CharField()
    reference_detail = serializers.CharField()
    validation = MarginIntervalSerializer()
    test = TestComparisonSerializer()


class SplitScoresSerializer(serializers.Serializer):
    validation = serializers.FloatField(allow_null=True)
    test = serializers.FloatField(allow_null=True)


class BaselineScoreSerializer(SplitScoresSerializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    baseline_kind = serializers.CharField(allow_null=True)


class ActiveVersionSerializer(serializers.Serializer):
    """The version active when the candidate was judged, and whether it could compete."""

    id = serializers.IntegerField()
    label = serializers.CharField()
    comparable = serializers.BooleanField()
    reason = serializers.CharField(required=False, help_text="Why it could not compete (its artifact failed).")


class BrierSplitSerializer(serializers.Serializer):
    candidate = serializers.FloatField(allow_null=True)
    base_rate = serializers.FloatField(allow_null=True)
    ok = serializers.BooleanField()


class BrierEvidenceSerializer(serializers.Serializer):
    base_rate = serializers.FloatField(allow_null=True)
    validation = BrierSplitSerializer()
    test = BrierSplitSerializer()


class PromotionEvidenceSerializer(serializers.Serializer):
    """Why a version was (not) promoted (mlops.promotion.RULE): a baseline's role, or a candidate's checks."""

    verdict = serializers.CharField(required=False, help_text="promoted, passed, refused, baseline...")
    role = serializers.CharField(required=False, help_text="A baseline's role: reference or fallback.")
    baseline_kind = serializers.CharField(required=False)
    rule = serializers.CharField(required=False)
    metric = serializers.CharField(required=False)
    better = serializers.ChoiceField(choices=["lower", "higher"], required=False)
    best_baseline = serializers.CharField(required=False)
    passed = serializers.BooleanField(required=False)
    candidate = SplitScoresSerializer(required=False)
    comparisons = ComparisonSerializer(many=True, required=False)
    checks = PromotionCheckSerializer(many=True, required=False)
    baselines = BaselineScoreSerializer(many=True, required=False)
    brier = BrierEvidenceSerializer(required=False)
    active_version = ActiveVersionSerializer(required=False, allow_null=True)


@extend_schema_field(PromotionEvidenceSerializer)
class PromotionEvidenceField(serializers.JSONField):
    """The stored evidence, as stored."""


class ModelVersionSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)
    rows = SplitRowsField(read_only=True)
    metrics = MetricsField(read_only=True)
    promotion_evidence = PromotionEvidenceField(read_only=True)

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


# --- response shapes (schema only: the views return the selectors' dicts) -------------------------------------

class AnsweringModelSerializer(serializers.Serializer):
    """The model that answered: a registered version, or the baseline and why."""

    label = serializers.CharField(help_text="'baseline' or name:vN:algorithm.")
    algorithm = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    id = serializers.IntegerField(allow_null=True)
    trained_at = serializers.DateTimeField(allow_null=True)
    data_version = serializers.IntegerField(allow_null=True)
    fallback_reason = serializers.CharField(allow_null=True, allow_blank=True)
    fallback_codes = serializers.ListField(child=serializers.CharField())


class IntervalSerializer(serializers.Serializer):
    lower = serializers.FloatField()
    upper = serializers.FloatField()


class FinishIntervalSerializer(serializers.Serializer):
    earliest = serializers.DateTimeField()
    latest = serializers.DateTimeField()


class IntervalBacktestSerializer(serializers.Serializer):
    coverage = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    weeks = serializers.IntegerField(required=False)
    backtest_id = serializers.IntegerField(required=False)
    text = serializers.CharField()


FEATURE_VALUE = {"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True}


@extend_schema_field({"type": "object", "additionalProperties": FEATURE_VALUE})
class FeatureValuesField(serializers.DictField):
    """Feature name -> the value used (a number, a category, or null when missing)."""


@extend_schema_field(FEATURE_VALUE)
class FeatureValueField(serializers.Field):
    """One feature's value: a number, a category, or null."""

    def to_representation(self, value):
        return value


class PredictionSerializer(serializers.Serializer):
    """A prediction: lead time (days), risk (probability) or ETA (remaining days, or a stalled order's answer)."""

    name = serializers.ChoiceField(choices=ModelName.choices)
    model = AnsweringModelSerializer(required=False, help_text="Absent for a stalled order (no model answers).")
    order_id = serializers.IntegerField(allow_null=True)
    as_of = serializers.DateTimeField(required=False)
    lead_time_days = serializers.FloatField(required=False)
    probability = serializers.FloatField(required=False)
    remaining_days = serializers.FloatField(required=False, allow_null=True, help_text="ETA; null when stalled.")
    interval_80 = IntervalSerializer(required=False, allow_null=True)
    interval_basis = serializers.CharField(required=False, allow_null=True)
    interval_group = serializers.CharField(required=False, allow_null=True)
    interval_backtest = IntervalBacktestSerializer(required=False)
    lower_clipped_at_as_of = serializers.BooleanField(required=False)
    created_at = serializers.DateTimeField(required=False)
    predicted_finish = serializers.DateTimeField(required=False)
    finish_interval_80 = FinishIntervalSerializer(required=False)
    notes = serializers.ListField(child=serializers.CharField(), required=False)
    baseline_level = serializers.CharField(required=False, help_text="Which baseline level answered.")
    features = FeatureValuesField(required=False)
    status = serializers.ChoiceField(choices=["stalled"], required=False)
    idle_days = serializers.FloatField(required=False)
    stall_threshold_days = serializers.FloatField(required=False)
    reason = serializers.CharField(required=False)


class ImportanceSerializer(serializers.Serializer):
    feature = serializers.CharField()
    importance = serializers.FloatField()
    std = serializers.FloatField()


class ContributionSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = FeatureValueField(allow_null=True, help_text="The order's value of the feature.")
    reference = FeatureValueField(allow_null=True, help_text="The reference order's value.")
    contribution = serializers.FloatField()


class ExplanationSerializer(serializers.Serializer):
    """Global importance of the answering model; with of_id, that prediction's contributions."""

    name = serializers.ChoiceField(choices=ModelName.choices)
    model = AnsweringModelSerializer()
    as_of = serializers.DateTimeField(required=False)
    global_importance = ImportanceSerializer(many=True)
    global_method = serializers.CharField(required=False)
    method = serializers.CharField(required=False)
    order_id = serializers.IntegerField(required=False)
    remaining_days = serializers.FloatField(required=False, allow_null=True)
    calibration_note = serializers.CharField(required=False)
    prediction = serializers.FloatField(required=False)
    reference_prediction = serializers.FloatField(required=False)
    baseline_level = serializers.CharField(required=False)
    contributions = ContributionSerializer(many=True, required=False)
    status = serializers.ChoiceField(choices=["stalled"], required=False)
    idle_days = serializers.FloatField(required=False)
    stall_threshold_days = serializers.FloatField(required=False)
    reason = serializers.CharField(required=False)


class TrainResultSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=ModelName.choices)
    status = serializers.CharField()
    data_version = serializers.IntegerField()
    rows = serializers.DictField(child=serializers.IntegerField(allow_null=True), help_text="Rows per split.")
    dataset_seconds = serializers.FloatField()
    seconds = serializers.FloatField()
    baseline = serializers.IntegerField()
    baselines = serializers.ListField(child=serializers.IntegerField())
    versions = serializers.ListField(child=serializers.IntegerField())
    promoted = serializers.IntegerField(allow_null=True)


class TrainAcceptedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    name = serializers.ChoiceField(choices=ModelName.choices)
    state = serializers.CharField(help_text="Celery state.")
    result = TrainResultSerializer(required=False, help_text="Eager mode (no broker): the task already ran.")
