"""What-if page URLs."""

from django.urls import path

from whatif import views

urlpatterns = [
    path("whatif/", views.runs_page, name="whatif-runs-page"),
    path("whatif/<int:whatif_id>/", views.result_page, name="whatif-result-page"),
]
