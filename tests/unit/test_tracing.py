"""Spans for traced commands, and the trace context their messages then carry."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from stockworker.adapters.tracing import CommandTracing, tracer_provider
from stockworker.service.ports import InboundRecord

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"
PARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01".encode()


def tracing() -> tuple[CommandTracing, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return CommandTracing(provider), exported


def record(offset: int, *headers: tuple[str, bytes | None]) -> InboundRecord:
    return InboundRecord("t.commands", 3, offset, b"SKU-1", b"{}", headers)


def test_a_traced_command_gets_a_child_span_whose_context_its_record_then_carries() -> None:
    traces, exported = tracing()
    untraced = record(1, ("other", b"x"))
    batch, spans = traces.begin(
        [record(0, ("other", b"y"), ("traceparent", PARENT), ("tracestate", b"k=v")), untraced]
    )
    traces.end(spans)
    [span] = exported.get_finished_spans()
    assert span.name == "t.commands process"
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN
    assert format(span.context.trace_id, "032x") == TRACE_ID
    own = format(span.context.span_id, "016x")
    assert own != PARENT_SPAN
    # What its messages will carry; the record's own headers stay as they came.
    assert batch[0].trace == (
        ("traceparent", f"00-{TRACE_ID}-{own}-01".encode()),
        ("tracestate", b"k=v"),
    )
    assert batch[0].headers == (("other", b"y"), ("traceparent", PARENT), ("tracestate", b"k=v"))
    assert batch[1] is untraced


def test_a_failed_batch_marks_its_spans_as_errors() -> None:
    traces, exported = tracing()
    _, spans = traces.begin([record(0, ("traceparent", PARENT))])
    traces.end(spans, failure=TimeoutError())
    [span] = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "TimeoutError"


def test_tracing_is_off_without_an_endpoint() -> None:
    assert tracer_provider("", "stockworker", 1.0) is None
    provider = tracer_provider("http://127.0.0.1:4318/", "stockworker", 0.5)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "stockworker"
    provider.shutdown()
