"""The shared shape of an analytic GET endpoint: validate the query, resolve as-of, call the (cached) selector."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from prodplan.asof import AsOfQuerySerializer, resolve_as_of


class CachedAnalyticView(APIView):
    """Subclasses name the query serializer and compute(as_of=..., **params), which calls a @versioned_cache selector
    (prodplan.cache): the cache key is the selector's, shared with the pages and the post-ingestion warm-ups."""

    query_serializer = AsOfQuerySerializer
    response_cache = True  # the answer depends on the request line and the data version only

    def compute(self, *, as_of, **params):
        raise NotImplementedError

    def get(self, request):
        as_of = resolve_as_of(request.query_params)  # first: an invalid as_of is a 400 naming it alone
        query = self.query_serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = {k: v for k, v in query.validated_data.items() if k != "as_of"}
        return Response(self.compute(as_of=as_of, **params))
