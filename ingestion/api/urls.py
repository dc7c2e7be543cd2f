"""Ingestion API routes under /api/."""

from django.urls import path

from ingestion.api import views

urlpatterns = [
    path("ingestion/run", views.IngestionRunView.as_view(), name="ingestion-run"),
    path("ingestion/status/<int:run_id>", views.IngestionStatusView.as_view(), name="ingestion-status"),
    path("ingestion/report/<int:run_id>", views.IngestionReportView.as_view(), name="ingestion-report"),
]
