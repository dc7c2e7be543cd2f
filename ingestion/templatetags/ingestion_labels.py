"""Template filters that show ingestion's codes and stored audit texts in words (ingestion.labels)."""

from __future__ import annotations

from django import template

from ingestion import labels

register = template.Library()


@register.filter
def run_status(value: str | None) -> str:
    return labels.run_status(value)


@register.filter
def run_stage(value: str | None) -> str:
    return labels.run_stage(value)


@register.filter
def reject_reason(value: str | None) -> str:
    return labels.reject_reason(value)


@register.filter
def issue_kind(value: str | None) -> str:
    return labels.issue_kind(value)


@register.filter
def run_error(value: str | None) -> str:
    return labels.run_error(value)


@register.filter
def issue_detail(issue: dict) -> str:
    """A data-quality issue row (kind, entity, key, row_count, measured, detail) in words."""
    return labels.issue_detail(kind=issue.get("kind", ""), entity=issue.get("entity", ""), key=issue.get("key", "*"),
                               row_count=issue.get("row_count") or 0, measured=issue.get("measured"),
                               detail=issue.get("detail", ""))
