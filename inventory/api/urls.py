"""SmartInventory API routes (included under /api/)."""

from django.urls import path

from inventory import selectors
from inventory.api import views

app_name = "inventory-api"

urlpatterns = [
    path("smartinventory/wip", views.WipView.as_view(), name="wip"),
    path("smartinventory/wip_mass", views.WipMassView.as_view(), name="wip-mass"),
    path("smartinventory/gelcoat_theoretical_usage", views.GelcoatTheoreticalUsageView.as_view(),
         name="gelcoat-theoretical-usage"),
] + [
    path(f"smartinventory/{feature}", views.UnsupportedFeatureView.as_view(feature=feature), name=feature)
    for feature in selectors.UNSUPPORTED_FEATURES
]
