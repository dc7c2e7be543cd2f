"""Page URLs of SmartInventory."""

from django.urls import path

from inventory import views

urlpatterns = [path("inventory/", views.inventory_page, name="inventory")]
