"""The two roles of the product as Django groups: supervisors (dashboards, what-if) and data stewards (triage)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

SUPERVISORS = "supervisors"
DATA_STEWARDS = "data stewards"

SUPERVISOR_PERMISSIONS = [
    ("orders", "view_manufacturingorder"),
    ("orders", "view_product"),
    ("orders", "view_phase"),
    ("quality", "view_qualityerrorrecord"),
]
STEWARD_PERMISSIONS = SUPERVISOR_PERMISSIONS + [
    ("ingestion", "view_ingestionrun"),
    ("ingestion", "view_sheetrun"),
    ("ingestion", "view_reject"),
    ("ingestion", "change_reject"),
    ("ingestion", "view_dataqualityissue"),
    ("ingestion", "change_dataqualityissue"),
    ("orders", "view_orderphaserecord"),
    ("orders", "view_phaseassignmentrecord"),
    ("orders", "view_routestep"),
    ("orders", "view_employee"),
    ("orders", "view_employeeskill"),
    ("orders", "view_orderabandonment"),
    ("orders", "add_orderabandonment"),
    ("orders", "change_orderabandonment"),
    ("orders", "delete_orderabandonment"),
]


def _permissions(pairs: list[tuple[str, str]]) -> list[Permission]:
    found = []
    for app_label, codename in pairs:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            found.append(permission)
    return found


def ensure_role_groups() -> tuple[Group, Group]:
    """Create (or refresh) the two groups with their permissions; idempotent."""
    supervisors, _ = Group.objects.get_or_create(name=SUPERVISORS)
    stewards, _ = Group.objects.get_or_create(name=DATA_STEWARDS)
    supervisors.permissions.add(*_permissions(SUPERVISOR_PERMISSIONS))
    stewards.permissions.add(*_permissions(STEWARD_PERMISSIONS))
    return supervisors, stewards
