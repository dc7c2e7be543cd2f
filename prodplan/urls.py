"""Root URL configuration: API, pages, admin, health and metrics."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy, gettext_noop
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from prodplan import health, metrics_view

admin.site.site_header = gettext_lazy("PRODPLAN administration")
admin.site.site_title = gettext_lazy("PRODPLAN admin")
admin.site.index_title = gettext_lazy("Data stewardship")
# Django's own pt catalogue leaves these admin words in English ("View", "View %s") or in pt-BR ("História"); ours wins.
ADMIN_WORDS_DJANGO_LEAVES_ENGLISH = (gettext_noop("View"), gettext_noop("View %s"), gettext_noop("History"))
admin.site.site_url = "/"
# The triage changelists are wide (sheet, row, reason, message, status): they get the full width.
admin.site.enable_nav_sidebar = False

handler400 = "prodplan.api_errors.bad_request"
handler404 = "prodplan.api_errors.page_not_found"
handler500 = "prodplan.api_errors.server_error"

urlpatterns = [
    path("api/health", health.health_view, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("api/redoc/", login_required(SpectacularRedocView.as_view(url_name="schema")), name="api-redoc"),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages without an icon link (admin, API docs).
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True), name="favicon"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("metrics", metrics_view.metrics, name="prometheus-django-metrics"),
]

for app in settings.PRODPLAN_API_APPS:
    urlpatterns.append(path("api/", include(f"{app}.api.urls")))
for app in settings.PRODPLAN_PAGE_APPS:
    urlpatterns.append(path("", include(f"{app}.urls")))
