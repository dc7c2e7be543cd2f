"""Serializers of the ingestion API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun, SheetRun
from ingestion.selectors import run_progress
from prodplan.api_serializers import IdOrLabelField


class IngestionRequestSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="The workbook (.xlsx), multipart.")
    inbox_name = serializers.CharField(required=False, max_length=255,
                                       help_text="Or: the name of a workbook in the inbox folder.")
    allow_shrink = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if bool(attrs.get("file")) == bool(attrs.get("inbox_name")):
            raise serializers.ValidationError("Send exactly one of 'file' (multipart upload) or 'inbox_name'.")
        return attrs


class SheetRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = SheetRun
        fields = ["sheet", "rows_read", "rows_loaded", "rows_rejected", "inserted", "updated", "unchanged", "deleted", "orphans", "seconds", "reconciled"]


class SheetProgressSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    total = serializers.IntegerField()
    rows_per_s = serializers.IntegerField()
    eta_s = serializers.FloatField()
    stage = serializers.CharField()


class RunStatusSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = IngestionRun
        fields = ["id", "file_name", "status", "trigger", "created_at", "started_at", "finished_at", "duration_seconds", "as_of", "error", "progress"]

    @extend_schema_field(serializers.DictField(child=SheetProgressSerializer(), help_text="Sheet -> live progress."))
    def get_progress(self, run) -> dict:
        return run_progress(run)


# --- response shapes (schema only) ----------------------------------------------------------------------------

class RunAcceptedSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["pending"])
    status_url = serializers.CharField()
    report_url = serializers.CharField()


class RunConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    run_id = serializers.IntegerField(allow_null=True, help_text="The run already queued or in progress.")


class RejectCountSerializer(serializers.Serializer):
    sheet = serializers.CharField()
    reason = serializers.CharField()
    rows = serializers.IntegerField()


class DataQualityIssueSerializer(serializers.Serializer):
    kind = serializers.CharField()
    entity = serializers.CharField()
    row_count = serializers.IntegerField()
    measured = serializers.FloatField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)
    sample = serializers.ListField(child=IdOrLabelField(), help_text="A sample of the offending keys.")


@extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}], "nullable": True})
class CellValueField(serializers.Field):
    """A cell's value as the profile keeps it: a number, a text, a date-time (ISO text), a boolean or null."""

    def to_representation(self, value):
        return value


class ColumnProfileSerializer(serializers.Serializer):
    """One column's profile: type counts, empties, distinct values, range and examples (personal columns keep only
    their counts: values null or empty, personal true)."""

    header = serializers.CharField()
    index = serializers.IntegerField()
    contract_kind = serializers.CharField(allow_null=True)
    rows = serializers.IntegerField()
    types = serializers.DictField(child=serializers.IntegerField(), help_text="Cell type -> cells.")
    nulls = serializers.IntegerField()
    filled = serializers.IntegerField()
    null_rate = serializers.FloatField(allow_null=True)
    distinct = serializers.IntegerField(allow_null=True)
    min = CellValueField(allow_null=True)
    max = CellValueField(allow_null=True)
    numeric_range = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    datetime_range = serializers.ListField(child=serializers.CharField(), allow_null=True)
    text_length_max = serializers.IntegerField(allow_null=True)
    examples = serializers.ListField(child=CellValueField())
    unparseable_ids = serializers.IntegerField(required=False)
    unparseable_examples = serializers.ListField(child=CellValueField(), required=False)
    personal = serializers.BooleanField(required=False)


class RelationshipProfileSerializer(serializers.Serializer):
    """One contract reference measured on the workbook (MATCH_RATE_RULE), or why it could not be."""

    source = serializers.CharField(help_text="Sheet.column that refers.")
    target = serializers.CharField(help_text="Sheet.column referred to.")
    contract_rate = serializers.FloatField(allow_null=True, help_text="The rate the data contract measured.")
    status = serializers.ChoiceField(choices=["ok", "missing"])
    missing = serializers.ListField(child=serializers.CharField(), required=False)
    match_rate = serializers.FloatField(allow_null=True)
    distinct_values = serializers.IntegerField(required=False)
    matched_distinct = serializers.IntegerField(required=False)
    rows_with_value = serializers.IntegerField(required=False)
    matched_rows = serializers.IntegerField(required=False)
    row_match_rate = serializers.FloatField(required=False, allow_null=True)
    orphan_distinct = serializers.IntegerField(required=False)
    orphan_rows = serializers.IntegerField(required=False)
    orphan_sample = serializers.ListField(child=CellValueField(), required=False)


class SheetKeyProfileSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    missing = serializers.IntegerField(allow_null=True, help_text="Rows without a complete key (null: key column absent).")
    duplicates = serializers.IntegerField(allow_null=True)


class SheetProfileSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    headers = serializers.ListField(child=serializers.CharField())
    key = SheetKeyProfileSerializer(required=False, help_text="Contract sheets: the key's completeness.")
    columns = serializers.DictField(child=ColumnProfileSerializer(), help_text="Header -> column profile.")


class WorkbookProfileSerializer(serializers.Serializer):
    """The workbook profile the inspector measured (empty before a run profiled it)."""

    workbook = serializers.CharField(required=False)
    file_size = serializers.IntegerField(required=False)
    sheets = serializers.DictField(child=SheetProfileSerializer(), required=False, help_text="Sheet -> profile.")
    relationships = RelationshipProfileSerializer(many=True, required=False)
    missing_sheets = serializers.ListField(child=serializers.CharField(), required=False)
    missing_headers = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                            help_text="Sheet -> contract headers it lacks.")
    extra_sheets = serializers.ListField(child=serializers.CharField(), required=False)
    extra_columns = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                          help_text="Sheet -> headers the contract does not know.")


class RunReportSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    file_name = serializers.CharField(allow_blank=True)
    file_sha256 = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    error = serializers.CharField(allow_blank=True)
    as_of = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    duration_seconds = serializers.FloatField(allow_null=True)
    timings = serializers.DictField(child=serializers.FloatField(), help_text="Step -> seconds.")
    sheets = SheetRunSerializer(many=True)
    rejects_by_reason = RejectCountSerializer(many=True)
    rejects_total = serializers.IntegerField()
    data_quality_issues = DataQualityIssueSerializer(many=True)
    orphan_keys_open = serializers.IntegerField()
    profile = WorkbookProfileSerializer(allow_null=True)
    admin_rejects_url = serializers.CharField()
