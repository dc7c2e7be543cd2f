"""App config: Datasets, training, model registry, predictions and explanations."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class MlopsConfig(AppConfig):
    name = "mlops"
    verbose_name = gettext_lazy("Models")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prodplan.demo import add_demo_step
        from prodplan.pages import add_panel, add_widget

        add_widget("order-detail", "prediction", "mlops/partials/_order_prediction.html", _order_prediction)
        add_panel("order-detail-timeline", "forecast", _order_forecast)  # the Gantt's forecast bars (orders.views)
        add_demo_step(30, "mlops.train", _demo_train)


def _order_prediction(**kwargs) -> dict:
    # Imported on first use: mlops.views loads pandas and the estimators, which no command that never
    # predicts should pay for at start-up.
    from mlops.views import order_prediction

    return order_prediction(**kwargs)


def _order_forecast(**kwargs) -> dict | None:
    from mlops.views import order_forecast  # as _order_prediction: the estimators load on first use

    return order_forecast(**kwargs)


def _demo_train(options: dict, say) -> None:
    """manage.py demo: train the models (the nightly job), unless --no-train."""
    if options.get("no_train"):
        return
    from mlops.tasks import train_all_models_task  # the estimators load here, not at every start-up

    say("training the lead-time and risk models (the nightly job; about 15 s at the demo scale)")
    train_all_models_task()
