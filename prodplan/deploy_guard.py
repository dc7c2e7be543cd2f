"""Refuse to serve with DEBUG off and a missing or placeholder secret key (sessions and signatures would be forgeable)."""

from __future__ import annotations

import os

from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

PLACEHOLDER_MARKS = ("django-insecure", "change-me", "changeme", "change_me", "placeholder", "secret-key", "example")
MIN_LENGTH = 50
MIN_DISTINCT_CHARACTERS = 5


def secret_key_problem(value: str | None) -> str | None:
    """Why this secret key must not be used in production, or None when it is acceptable."""
    if not value:
        return "DJANGO_SECRET_KEY is not set"
    lowered = value.lower()
    mark = next((m for m in PLACEHOLDER_MARKS if m in lowered), None)
    if mark:
        return f"DJANGO_SECRET_KEY is a placeholder (contains '{mark}')"
    if len(value) < MIN_LENGTH or len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return f"DJANGO_SECRET_KEY is too weak (needs >= {MIN_LENGTH} characters, >= {MIN_DISTINCT_CHARACTERS} distinct)"
    return None


def refuse_unsafe_secret_key() -> None:
    """Called by the WSGI/ASGI entry points: with DEBUG off, a bad key stops the server before it serves."""
    from django.conf import settings

    if settings.DEBUG:
        return
    problem = secret_key_problem(os.environ.get("DJANGO_SECRET_KEY"))
    if problem:
        raise ImproperlyConfigured(
            f"{problem}; refusing to start with DEBUG off. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'")


@register(Tags.security, deploy=True)
def check_secret_key(app_configs=None, **kwargs):
    """`manage.py check --deploy` fails (an error, not Django's warning) on the same keys the server refuses."""
    problem = secret_key_problem(os.environ.get("DJANGO_SECRET_KEY"))
    if problem:
        return [Error(problem, hint="Set DJANGO_SECRET_KEY to a long random value.", id="prodplan.E100")]
    return []
