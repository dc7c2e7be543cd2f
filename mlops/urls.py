"""Page URLs of the model registry."""

from django.urls import path

from mlops import views

urlpatterns = [path("models/", views.models_page, name="models")]
