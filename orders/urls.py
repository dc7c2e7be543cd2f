"""Page URLs of the orders domain (overview at the root) and the Django auth views under accounts/."""

from django.urls import include, path

from orders import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("orders/", views.order_list, name="order-list"),
    path("orders/export.xlsx", views.order_export, name="order-export"),
    path("orders/<int:order_id>/", views.order_detail, name="order-detail"),
    path("accounts/", include("django.contrib.auth.urls")),
]
