"""URLs of the what-if API (included under /api/)."""

from django.urls import path

from whatif.api import views

urlpatterns = [
    path("whatif/simulate", views.SimulateView.as_view(), name="whatif-simulate"),
    path("whatif/result/<int:whatif_id>", views.ResultView.as_view(), name="whatif-result"),
    path("whatif/runs", views.RunListView.as_view(), name="whatif-runs"),
]
