"""DRF authentication by X-API-Key, and the permissions: reads of factory data need a session or a key, writes a key or staff."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from prodplan.models import ApiKey, hash_api_key
from prodplan.roles import SUPERVISORS

LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyClient:
    """The authenticated principal of an API-key request (a client, not a Django user)."""

    is_authenticated = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.pk = None
        self.username = f"apikey:{api_key.prefix}"

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    header = "X-API-Key"

    def authenticate(self, request):
        raw = request.headers.get(self.header)
        if not raw:
            return None
        api_key = ApiKey.objects.filter(key_hash=hash_api_key(raw.strip()), revoked_at__isnull=True).first()
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        now = timezone.now()
        # Not a write per request: "last used" to the minute is what a key's owner needs.
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return ApiKeyClient(api_key), api_key

    def authenticate_header(self, request):
        return self.header


class HasApiKeyOrStaff(permissions.BasePermission):
    """Write and expensive endpoints: a valid API key, or a logged-in staff user."""

    message = "This endpoint needs a valid X-API-Key header."

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class ReadsFactoryData(permissions.BasePermission):
    """The default of every API view: a valid API key or a logged-in user, unless PRODPLAN_PUBLIC_READS opens
    reads for a closed network. Factory data (orders, KPIs, quality, stock) is not public."""

    message = "Factory data needs a login or a valid X-API-Key header."

    def has_permission(self, request, view):
        if getattr(settings, "PUBLIC_READS", False) and request.method in permissions.SAFE_METHODS:
            return True
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        return bool(user and user.is_authenticated)


class HasApiKeyOrSupervisorRole(permissions.BasePermission):
    """Model training: a valid API key, a superuser, or a member of the supervisors group. Roles decide, not
    is_staff: a data steward is staff (for the admin's triage) but does not retrain the factory's models."""

    message = "Training a model needs an API key or the supervisor role."

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return bool(user.is_superuser or user.groups.filter(name=SUPERVISORS).exists())
