"""Page URLs of the quality domain."""

from django.urls import path

from quality import views

urlpatterns = [
    path("quality/", views.quality_page, name="quality"),
    path("quality/errors/", views.quality_errors_page, name="quality-errors"),
]
