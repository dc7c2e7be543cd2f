"""Page URLs of the model registry and its "train now" jobs."""

from django.urls import path

from mlops import views

urlpatterns = [
    path("models/", views.models_page, name="models"),
    path("models/train/", views.train_now, name="models-train"),
    path("models/train/<int:job_id>/", views.train_status, name="models-train-status"),
]
