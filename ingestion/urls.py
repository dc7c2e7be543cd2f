"""Page URLs of ingestion: upload, live progress and the run report."""

from django.urls import path

from ingestion import views

urlpatterns = [
    path("ingestion/", views.ingestion_page, name="ingestion"),
    path("ingestion/runs/<int:run_id>/", views.ingestion_run, name="ingestion-run"),
    path("ingestion/freshness/", views.freshness_chip, name="ingestion-freshness"),
]
