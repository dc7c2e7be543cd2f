"""URLs of the orders API, included under /api/ (the React frontend calls these exact paths)."""

from django.urls import path

from orders.api import views

app_name = "orders-api"

urlpatterns = [
    path("prodplan/orders", views.OrderListView.as_view(), name="order-list"),
    path("prodplan/orders/states", views.OrderStatesView.as_view(), name="order-states"),
    path("prodplan/orders/stalled", views.StalledOrdersView.as_view(), name="stalled-orders"),
    path("prodplan/orders/<int:of_id>", views.OrderDetailView.as_view(), name="order-detail"),
    path("prodplan/orders/<int:of_id>/phases", views.OrderPhasesView.as_view(), name="order-phases"),
    path("prodplan/routes/<int:produto_id>", views.RouteView.as_view(), name="route"),
    path("prodplan/schedule/current", views.ScheduleCurrentView.as_view(), name="schedule-current"),
    path("prodplan/bottlenecks", views.BottlenecksView.as_view(), name="bottlenecks"),
    path("prodplan/risk_queue", views.RiskQueueView.as_view(), name="risk-queue"),
    path("kpis/overview", views.KpiOverviewView.as_view(), name="kpi-overview"),
    path("kpis/by-phase", views.KpiByPhaseView.as_view(), name="kpi-by-phase"),
    path("kpis/by-product", views.KpiByProductView.as_view(), name="kpi-by-product"),
    path("kpis/by-employee", views.KpiByEmployeeView.as_view(), name="kpi-by-employee"),
]
