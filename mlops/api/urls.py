"""API routes of the mlops app (included under /api/)."""

from django.urls import path

from mlops.api import views
from mlops.choices import ModelName

urlpatterns = [
    path("ml/train/leadtime", views.TrainView.as_view(model_name=ModelName.LEAD_TIME), name="ml-train-leadtime"),
    path("ml/train/risk", views.TrainView.as_view(model_name=ModelName.RISK), name="ml-train-risk"),
    path("ml/train/eta", views.TrainView.as_view(model_name=ModelName.ETA), name="ml-train-eta"),
    path("ml/models", views.ModelVersionListView.as_view(), name="ml-models"),
    path("ml/predict/leadtime", views.PredictView.as_view(model_name=ModelName.LEAD_TIME), name="ml-predict-leadtime"),
    path("ml/predict/risk", views.PredictView.as_view(model_name=ModelName.RISK), name="ml-predict-risk"),
    path("ml/predict/eta", views.PredictView.as_view(model_name=ModelName.ETA), name="ml-predict-eta"),
    path("ml/explain/leadtime", views.ExplainView.as_view(model_name=ModelName.LEAD_TIME), name="ml-explain-leadtime"),
    path("ml/explain/risk", views.ExplainView.as_view(model_name=ModelName.RISK), name="ml-explain-risk"),
    path("ml/explain/eta", views.ExplainView.as_view(model_name=ModelName.ETA), name="ml-explain-eta"),
]
