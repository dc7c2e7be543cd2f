"""ASGI entry point; refuses to start with DEBUG off and a placeholder secret key."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")
application = get_asgi_application()

from prodplan.deploy_guard import refuse_unsafe_secret_key  # noqa: E402 - needs the configured settings

refuse_unsafe_secret_key()
