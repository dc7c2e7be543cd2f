"""Template filters that turn the orders domain's codes (state, status, placement basis, risk reasons) into words."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from orders.choices import OrderState, OrderStatus, PlacementBasis, ProductFamily

register = template.Library()

_SCOPES = {"product": gettext_noop("the product's history"), "family": gettext_noop("the family's history"),
           "global": gettext_noop("all orders' history")}


@register.filter
def state_label(value: str | None) -> str:
    return str(OrderState(value).label) if value in OrderState.values else "—"


@register.filter
def status_label(value: str | None) -> str:
    short = {"DONE": _("Done"), "LATE": _("Late"), "AT_RISK": _("At risk"), "CREATED": _("Created"),
             "IN_PROGRESS": _("On track"), "STALLED": _("Stalled"), "ABANDONED": _("Abandoned")}
    return short.get(value, str(OrderStatus(value).label) if value in OrderStatus.values else "—")


@register.filter
def family_label(value: str | None) -> str | None:
    return str(ProductFamily(value).label) if value in ProductFamily.values else value


@register.filter
def basis_label(value: str | None) -> str:
    return str(PlacementBasis(value).label) if value in PlacementBasis.values else "—"


@register.filter
def scope_label(value: str | None) -> str:
    return _(_SCOPES[value]) if value in _SCOPES else "—"


@register.filter
def risk_reason(reason: dict) -> str:
    """One reason of the risk queue (orders.selectors.risk._risk_rows), in words."""
    code = reason.get("code")
    if code == "older_than_p90":
        return _("older than the p90 lead time (%(age)s > %(limit)s days, %(scope)s)") % {
            "age": reason["age_days"], "limit": reason["threshold_days"], "scope": scope_label(reason["scope"])}
    if code == "older_than_p75":
        return _("older than the p75 lead time (%(age)s > %(limit)s days, %(scope)s)") % {
            "age": reason["age_days"], "limit": reason["threshold_days"], "scope": scope_label(reason["scope"])}
    if code == "at_bottleneck":
        return _("%(state)s at bottleneck #%(rank)s (%(phase)s)") % {
            "state": state_label(reason["state"]), "rank": reason["rank"], "phase": reason["phase"]}
    if code == "reworks":
        return ngettext("%(n)s rework pass so far", "%(n)s rework passes so far", reason["count"]) % {"n": reason["count"]}
    if code == "product_defects":
        return _("the product has defects on %(share)s%% of its finished orders") % {"share": round(reason["share"] * 100)}
    return str(code)
