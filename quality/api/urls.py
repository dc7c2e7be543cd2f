"""Quality API routes (included under /api/)."""

from django.urls import path

from quality.api import views

app_name = "quality-api"

urlpatterns = [
    path("quality/overview", views.OverviewView.as_view(), name="overview"),
    path("quality/by-phase", views.ByPhaseView.as_view(), name="by-phase"),
    path("quality/by-product", views.ByProductView.as_view(), name="by-product"),
    path("quality/heatmap", views.HeatmapView.as_view(), name="heatmap"),
    path("quality/escapes", views.EscapesView.as_view(), name="escapes"),
    path("quality/risk", views.RiskView.as_view(), name="risk"),
]
