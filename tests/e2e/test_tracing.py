"""A command's traceparent continues through the worker onto the events it causes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PUBLISHER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PUBLISHER_SPAN}-01".encode()


async def _send_traced(services: Services, topics: Topics, events: EventCollector) -> str:
    """A traced receipt and an untraced one; returns the traced one's command id."""
    traced = command("ReceivePOItem", quantity=4)
    untraced = command("ReceivePOItem", quantity=1, sku=traced["sku"])
    bootstrap = services.kafka_bootstrap_servers
    await publish(
        bootstrap,
        topics.commands,
        [command_message(traced)],
        [
            ("traceparent", TRACEPARENT),
            ("tracestate", b"vendor=abc"),
        ],
    )
    await publish(bootstrap, topics.commands, [command_message(untraced)])
    ids = {traced["command_id"], untraced["command_id"]}
    await events.until(lambda e: ids <= set(e.results()) and len(e.on(topics.changed)) >= 2)
    return str(traced["command_id"])


async def test_with_tracing_off_the_commands_traceparent_is_carried_unchanged(
    worker: WorkerProcess, services: Services, topics: Topics, events: EventCollector
) -> None:
    command_id = await _send_traced(services, topics, events)
    [result] = [r for r in events.on(topics.results) if r.json()["command_id"] == command_id]
    changed = [
        e for e in events.on(topics.changed) if e.json()["cause"]["command_id"] == command_id
    ]
    assert len(changed) == 1
    for message in (result, changed[0]):
        assert message.header("traceparent") == TRACEPARENT
        assert message.header("tracestate") == b"vendor=abc"
    others = [e for e in events.on(topics.changed) if e.json()["cause"]["command_id"] != command_id]
    assert others and all("traceparent" not in e.headers for e in others)


async def test_with_tracing_on_the_worker_span_is_the_events_parent(
    services: Services, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    with OtlpReceiver() as collector:
        worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
        worker.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
        worker.env["OTEL_SERVICE_NAME"] = "stockworker-under-test"
        worker.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # export within 0.1 s, not 5 s
        worker.start()
        try:
            async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
                command_id = await _send_traced(services, topics, events)
                # A traced record that is not a command: its dead letter keeps the
                # publisher's headers as they came.
                await publish(
                    services.kafka_bootstrap_servers,
                    topics.commands,
                    [(b"junk", b"not json")],
                    [("traceparent", TRACEPARENT)],
                )
                await events.until(lambda e: len(e.on(topics.dead_letters)) == 1)
            [dead] = events.on(topics.dead_letters)
            assert dead.header("traceparent") == TRACEPARENT
            [changed] = [
                e
                for e in events.on(topics.changed)
                if e.json()["cause"]["command_id"] == command_id
            ]
            version, trace_id, parent_span, flags = (
                changed.header("traceparent").decode().split("-")
            )
            assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
            assert parent_span != PUBLISHER_SPAN  # the worker's own span, not the publisher's
            assert changed.header("tracestate") == b"vendor=abc"
            span = await asyncio.to_thread(collector.wait_for_span, parent_span, 30)
            assert span is not None, collector.received()
            assert span.trace_id == TRACE_ID
            assert span.parent_span_id == PUBLISHER_SPAN
            assert span.name == f"{topics.commands} process"
            assert span.service == "stockworker-under-test"
            # Linked to the batch's span, which FastStream's middleware exported too.
            batch_spans = {s.span_id for s in collector.received() if s.trace_id != TRACE_ID}
            assert set(span.links) & batch_spans
        finally:
            assert worker.stop() == 0
