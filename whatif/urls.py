"""Page URLs of the what-if simulator (login required; running needs the supervisor role)."""

from django.urls import path

from whatif import views

urlpatterns = [
    path("whatif/", views.whatif_page, name="whatif"),
    path("whatif/run/", views.whatif_run, name="whatif-run"),
    path("whatif/compare/", views.whatif_compare, name="whatif-compare"),
    path("whatif/runs/", views.whatif_runs, name="whatif-runs"),
    path("whatif/<int:run_id>/", views.whatif_run_detail, name="whatif-run-detail"),
]
