"""DRF throttles keyed by API key (per client) on top of the per-IP anonymous throttle."""

from rest_framework.throttling import SimpleRateThrottle

from prodplan.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return None
