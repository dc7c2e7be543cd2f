"""The models' inputs (mlops.datasets feature columns) in words of the reader's language."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

# The model inputs (mlops.datasets: CATEGORICAL, LEAD_TIME_NUMERIC, RISK_NUMERIC, ETA_NUMERIC), in words.
FEATURES = {
    "family": gettext_lazy("product family"),
    "product_id": gettext_lazy("product"),
    "product_known": gettext_lazy("product in the catalogue"),
    "demould_weight_kg": gettext_lazy("demoulding weight (kg)"),
    "finished_weight_kg": gettext_lazy("finished weight (kg)"),
    "gelcoat_deck_qty": gettext_lazy("deck gelcoat quantity"),
    "gelcoat_hull_qty": gettext_lazy("hull gelcoat quantity"),
    "route_steps": gettext_lazy("steps of the standard route"),
    "route_labour": gettext_lazy("labour coefficient of the route"),
    "route_machine": gettext_lazy("machine coefficient of the route"),
    "created_month": gettext_lazy("month of creation"),
    "created_weekday": gettext_lazy("weekday of creation"),
    "open_orders": gettext_lazy("open orders at creation"),
    "route_wip": gettext_lazy("work in progress on the route"),
    "fam_recent_lt": gettext_lazy("family's recent lead time"),
    "fam_recent_n": gettext_lazy("family's recent finished orders"),
    "prod_hist_lt": gettext_lazy("product's past lead time"),
    "prod_hist_n": gettext_lazy("product's past finished orders"),
    "prod_hist_orders": gettext_lazy("product's past orders"),
    "prod_hist_bad_rate": gettext_lazy("product's past defect rate"),
    "fam_hist_orders": gettext_lazy("family's past orders"),
    "fam_hist_bad_rate": gettext_lazy("family's past defect rate"),
    "state_code": gettext_lazy("order state"),
    "done_phases": gettext_lazy("phases done"),
    "route_share_done": gettext_lazy("share of the route done"),
    "last_phase_id": gettext_lazy("last phase finished"),
    "active_phase_id": gettext_lazy("phase in progress"),
    "time_in_state_days": gettext_lazy("days in the current state"),
    "elapsed_days": gettext_lazy("days since creation"),
    "reworks": gettext_lazy("rework passes"),
    "active_orders": gettext_lazy("orders in progress"),
    "recent_step_hours": gettext_lazy("recent hours per step"),
    "recent_lead_days": gettext_lazy("recent lead time (days)"),
    "moment_hour": gettext_lazy("hour of the moment"),
    "moment_weekday": gettext_lazy("weekday of the moment"),
}


def feature_label(code: str) -> str:
    return str(FEATURES.get(code, code.replace("_", " ")))
