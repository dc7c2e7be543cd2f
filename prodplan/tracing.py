"""OpenTelemetry tracing of requests, SQL and Celery tasks; off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

When on, every request gets a server span (Django), every query a child span (psycopg; the SQL text without
parameters, so no factory or personal values leave the process), and every task a span (Celery) in the trace of
the request that queued it: the trace context travels in the task's headers (in eager mode the task simply runs
inside the request's span). Spans go to the OTLP/HTTP endpoint in batches. Standard OTEL_* variables apply
(OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER...).
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("prodplan.tracing")

_state: dict[str, object] = {}


def tracing_enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _open_connections() -> list:
    """The psycopg connections Django has already opened in this process."""
    from django.db import connections

    return [c.connection for c in connections.all(initialized_only=True) if c.connection is not None]


def configure_tracing(*, exporter=None):
    """Instrument Django, psycopg and Celery; returns the TracerProvider, or None when tracing is off.

    exporter: a span exporter to use instead of OTLP (tests pass an in-memory one); spans are then exported as
    they end. Idempotent: a second call returns the provider already configured."""
    if "provider" in _state:
        return _state["provider"]
    if exporter is None and not tracing_enabled():
        return None
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "prodplan")}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    DjangoInstrumentor().instrument(tracer_provider=provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider, enable_commenter=False)
    for opened in _open_connections():  # connections opened before this call keep their cursor factory otherwise
        PsycopgInstrumentor.instrument_connection(opened, tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    _state["provider"] = provider
    logger.info("tracing on", extra={"exporter": type(exporter).__name__ if exporter else "otlp-http"})
    return provider


def shutdown_tracing() -> None:
    """Undo configure_tracing (tests): the instrumentations are removed and the provider flushed."""
    provider = _state.pop("provider", None)
    if provider is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    DjangoInstrumentor().uninstrument()
    for opened in _open_connections():
        PsycopgInstrumentor.uninstrument_connection(opened)
    PsycopgInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()
    provider.shutdown()
