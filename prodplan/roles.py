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


def in_group(user, name: str) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.groups.filter(name=name).exists()))


def can_run_whatif(user) -> bool:
    """Staff and supervisors start what-if runs."""
    return bool(user.is_authenticated and (user.is_staff or in_group(user, SUPERVISORS)))


def can_ingest(user) -> bool:
    """Staff and data stewards upload workbooks."""
    return bool(user.is_authenticated and (user.is_staff or in_group(user, DATA_STEWARDS)))


def can_train_models(user) -> bool:
    """Superusers and supervisors retrain models (as the API's HasApiKeyOrSupervisorRole): roles decide, not
    is_staff, so a data steward does not."""
    return bool(user.is_authenticated and (user.is_superuser or user.groups.filter(name=SUPERVISORS).exists()))


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
