"""OpenTelemetry tracing of commands: off unless an OTLP endpoint is configured.

A command published with a W3C `traceparent` gets a span of its own in the worker
("<topic> process"), a child of the publisher's span and linked to the span FastStream's
middleware makes for the whole batch. Before the batch is applied, that span's context
becomes the record's `trace`, which the results and events it causes carry through the
outbox (service/record_headers.py `carried_trace`): a subscriber that continues the
trace from a StockChanged hangs under the worker's span. The record's own headers are
left as they came (a dead letter keeps the publisher's). Commands without
a traceparent get no span of their own (the batch span still counts them); so tracing
costs nothing per untraced command.

With tracing off the worker still carries a command's traceparent onto its events
unchanged, so a subscriber's span hangs directly under the publisher's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from stockworker.service.ports import Headers, InboundRecord
from stockworker.service.record_headers import trace_headers

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(endpoint: str, service_name: str, sample_ratio: float) -> TracerProvider | None:
    """An OTLP/HTTP exporting provider for `endpoint` (the collector's base URL), or None
    when no endpoint is configured (tracing off)."""
    if not endpoint:
        return None
    # Imported here: the exporter pulls in requests and protobuf, which a worker that does
    # not trace need not load.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBasedTraceIdRatio(sample_ratio),
    )
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class BatchTracing(Protocol):
    """Spans for the traced commands of a batch (see the module's docstring)."""

    def begin(self, batch: list[InboundRecord]) -> tuple[list[InboundRecord], list[Span]]: ...

    def end(self, spans: Sequence[Span], failure: BaseException | None = None) -> None: ...


class NoTracing:
    def begin(self, batch: list[InboundRecord]) -> tuple[list[InboundRecord], list[Span]]:
        return batch, []

    def end(self, spans: Sequence[Span], failure: BaseException | None = None) -> None:
        pass


@dataclass
class CommandTracing:
    provider: TracerProvider

    def __post_init__(self) -> None:
        self._tracer = self.provider.get_tracer("stockworker")

    def begin(self, batch: list[InboundRecord]) -> tuple[list[InboundRecord], list[Span]]:
        # The batch's span, when FastStream's middleware made one: each command links to it.
        current = trace.get_current_span().get_span_context()
        links = [Link(current)] if current.is_valid else None
        spans: list[Span] = []
        traced: list[InboundRecord] = []
        for record in batch:
            carried = trace_headers(record.headers)
            if not carried:
                traced.append(record)
                continue
            parent = _PROPAGATOR.extract({k: v.decode("latin-1") for k, v in carried if v})
            span = self._tracer.start_span(
                f"{record.topic} process",
                context=parent,
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                },
            )
            spans.append(span)
            traced.append(replace(record, trace=_context_of(span)))
        return traced, spans

    def end(self, spans: Sequence[Span], failure: BaseException | None = None) -> None:
        for span in spans:
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
            span.end()

    def shutdown(self) -> None:
        """Export what is buffered (on the worker's way out)."""
        self.provider.shutdown()


def _context_of(span: Span) -> Headers:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return tuple((k, v.encode()) for k, v in carrier.items())
