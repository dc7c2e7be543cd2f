"""Query-parameter serializers of the SmartInventory API."""

from __future__ import annotations

from rest_framework import serializers

from prodplan.asof import AsOfQuerySerializer


class GelcoatQuerySerializer(AsOfQuerySerializer):
    period = serializers.ChoiceField(choices=[("week", "week"), ("month", "month")], required=False, default="month")
