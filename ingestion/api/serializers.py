"""Serializers of the ingestion API."""

from rest_framework import serializers

from ingestion.models import IngestionRun, SheetRun


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


class RunStatusSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = IngestionRun
        fields = ["id", "file_name", "status", "trigger", "created_at", "started_at", "finished_at", "duration_seconds", "as_of", "error", "progress"]

    def get_progress(self, run) -> dict:
        from ingestion.services import run_progress

        return run_progress(run)
