"""Query-parameter serializers of the SmartInventory API."""

from __future__ import annotations

from rest_framework import serializers


class AsOfQuerySerializer(serializers.Serializer):
    as_of = serializers.CharField(required=False, help_text="Date or datetime; default: the data's as-of time.")


class GelcoatQuerySerializer(AsOfQuerySerializer):
    period = serializers.ChoiceField(choices=[("week", "week"), ("month", "month")], required=False, default="month")
