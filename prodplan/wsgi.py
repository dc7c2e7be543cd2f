"""WSGI entry point (gunicorn prodplan.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")
application = get_wsgi_application()
