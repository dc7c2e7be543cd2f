"""The shared shape of a cached analytic GET endpoint: validate the query, resolve as-of, cache, compute."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from prodplan.asof import AsOfQuerySerializer, resolve_as_of
from prodplan.cache import cached


class CachedAnalyticView(APIView):
    """Subclasses name the query serializer, the cache name and compute(as_of=..., **params)."""

    query_serializer = AsOfQuerySerializer
    cache_name = ""
    response_cache = True  # the answer depends on the request line and the data version only

    def compute(self, *, as_of, **params):
        raise NotImplementedError

    def get(self, request):
        as_of = resolve_as_of(request.query_params)  # first: an invalid as_of is a 400 naming it alone
        query = self.query_serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = {k: v for k, v in query.validated_data.items() if k != "as_of"}
        payload = cached(self.cache_name, {"as_of": as_of.isoformat(), **params}, lambda: self.compute(as_of=as_of, **params))
        return Response(payload)
