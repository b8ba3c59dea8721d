"""The FastStream application: a thin shell around the command consumer.

Kafka records reach the handler untouched (a custom parser and decoder skip
FastStream's own decoding, which would fail on non-UTF-8 headers), in batches,
with manual acknowledgement: offsets are committed by CommandConsumer.

The application is FastStream's ASGI one: uvicorn serves its health, metrics and
AsyncAPI routes (entrypoints/http.py) on STOCKWORKER_HTTP_PORT (0: none). `WorkerApp.run`
keeps the worker's own lifecycle: SIGTERM or SIGINT finishes and commits the batch in
hand, stops the relay child, and only then stops the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsyncAPIRoute
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from opentelemetry.sdk.trace import TracerProvider

from stockworker.adapters.kafka.guarded_consumer import GuardedConsumer
from stockworker.adapters.readiness import Readiness
from stockworker.adapters.relay_process import RelayProcess
from stockworker.bootstrap import Runtime, build_runtime, build_tracing
from stockworker.config import Settings
from stockworker.entrypoints.http import (
    ContractSpecification,
    HttpServer,
    health_routes,
    record_report,
)
from stockworker.entrypoints.runner import settle_heap
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


class GuardedKafkaBroker(KafkaBroker):
    """FastStream's Kafka broker, with GuardedConsumer for every subscriber.

    FastStream builds consumers from a factory it makes when it connects; this swaps
    in the same options for a GuardedConsumer (tests/e2e check the swap took).
    """

    def __init__(self, *args: Any, top_up_ms: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._top_up_ms = top_up_ms

    async def _connect(self) -> Callable[..., AIOKafkaConsumer]:
        built = await super()._connect()
        assert isinstance(built, partial), "FastStream's consumer factory changed shape"
        guarded = partial(GuardedConsumer, *built.args, top_up_ms=self._top_up_ms, **built.keywords)
        self.config.broker_config.builder = guarded
        return guarded


async def _raw_batch(
    records: tuple[ConsumerRecord[Any, Any], ...], _original: Any
) -> StreamMessage[tuple[ConsumerRecord[Any, Any], ...]]:
    return StreamMessage(raw_message=records, body=b"", message_id=f"batch-{id(records)}")


async def _records(
    message: StreamMessage[tuple[ConsumerRecord[Any, Any], ...]], _original: Any
) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The batch's records themselves are what the handler is given."""
    return message.raw_message


def _broker(settings: Settings, tracing: TracerProvider | None) -> GuardedKafkaBroker:
    from stockworker.adapters.metrics.broker import broker_metrics_middleware

    kafka = settings.kafka()
    # graceful_timeout: on shutdown the broker waits this long for the batch in hand, so
    # it is finished and its offsets committed rather than redone after the restart.
    # Per-batch "Received"/"Processed" lines only at DEBUG: at thousands of commands a
    # second they would drown the log. FastStream's Prometheus middleware counts the
    # records of each batch and their bytes (faststream_received_messages_*). With tracing
    # on, its telemetry middleware gives each batch a span (adapters/tracing.py).
    middlewares: list[Any] = [broker_metrics_middleware()]
    if tracing is not None:
        middlewares.append(KafkaTelemetryMiddleware(tracer_provider=tracing))
    return GuardedKafkaBroker(
        kafka.bootstrap_servers,
        top_up_ms=settings.batch_top_up_ms,
        security=kafka.security(),
        graceful_timeout=settings.shutdown_grace_seconds,
        logger=log,
        log_level=logging.DEBUG,
        middlewares=middlewares,
        # The handler takes the records as they are: no dependency injection, which
        # would resolve its argument on a thread of anyio's pool for every batch.
        apply_types=False,
    )


def _subscribe(
    broker: GuardedKafkaBroker, settings: Settings, state: dict[str, Runtime]
) -> BatchSubscriber:
    """The commands subscriber: raw batches, offsets committed by CommandConsumer."""
    subscriber = broker.subscriber(
        Topics(settings.topic_prefix).commands,
        group_id=settings.group_id,
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=settings.batch_timeout_ms,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        parser=_raw_batch,
        decoder=_records,
        title="stock commands",
        description="Stock commands, applied in batches; offsets committed after the database.",
    )

    # One parameter: with apply_types off, FastStream passes the decoded body (the
    # records, `_records`) as it is; given several, it would spread them over them.
    @subscriber
    async def apply_commands(records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        assert subscriber.consumer is not None
        await state["runtime"].consumer.handle(records, subscriber.consumer)

    return subscriber


@dataclass
class WorkerExit:
    """The worker's exit code: 0, or its relay process's when that ended it."""

    code: int = 0


class WorkerApp(AsgiFastStream):
    """FastStream's ASGI application, run by the worker itself rather than by uvicorn's
    lifespan: uvicorn only serves the routes (see the module's doc)."""

    def __init__(
        self,
        broker: GuardedKafkaBroker,
        settings: Settings,
        readiness: Readiness,
    ) -> None:
        super().__init__(
            broker,
            logger=log,
            asgi_routes=health_routes(readiness),
            specification=ContractSpecification(),
            asyncapi_path=AsyncAPIRoute("/asyncapi", try_it_out_path=None),
        )
        self.settings = settings
        self.readiness = readiness
        self._exit_requested = asyncio.Event()

    def exit(self) -> None:
        """Stop as SIGTERM does: the batch in hand finishes and commits first."""
        self._exit_requested.set()

    async def run(
        self,
        log_level: int = logging.INFO,
        run_extra_options: dict[str, Any] | None = None,
    ) -> None:
        # Bound first: a port in use stops start-up before anything else runs.
        http = (
            HttpServer(
                self,
                self.settings.http_host,
                self.settings.http_port,
                any_port_if_taken=not self.settings.http_port_explicit,
            )
            if self.settings.http_port
            else None
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.exit)
        try:
            if http is not None:
                http.start()
            await self._run_until_exit(log_level, run_extra_options or {})
        finally:
            if http is not None:
                await http.stop()
            await self.readiness.close()

    async def _run_until_exit(self, log_level: int, run_extra_options: dict[str, Any]) -> None:
        """FastStream's own run loop, as `FastStream.run` has it, but signal-driven:
        a start-up failure is raised; an exit asked for during start-up cancels it."""
        starting = asyncio.create_task(self._startup(log_level, run_extra_options))
        exit_requested = asyncio.create_task(self._exit_requested.wait())
        try:
            await asyncio.wait({starting, exit_requested}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                await exit_requested
            else:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
        finally:
            exit_requested.cancel()
        await self._shutdown(log_level)


def create_app(settings: Settings, ending: WorkerExit | None = None) -> WorkerApp:
    tracing = build_tracing(settings)
    broker = _broker(settings, tracing)
    state: dict[str, Runtime] = {}
    subscriber = _subscribe(broker, settings, state)
    commands = Topics(settings.topic_prefix).commands
    readiness = Readiness(
        broker,
        lambda: subscriber.consumer,
        kafka=settings.kafka(),
        topic=commands,
        group_id=settings.group_id,
        max_outbox_age_seconds=settings.ready_max_outbox_age_seconds,
        on_report=record_report,
    )
    app = WorkerApp(broker, settings, readiness)
    outcome = ending or WorkerExit()

    def relay_exited(code: int) -> None:
        # A shutdown like SIGTERM's: the batch in hand finishes and commits first.
        outcome.code = code if code > 0 else 1
        app.exit()

    @app.on_startup
    async def start() -> None:
        runtime = await build_runtime(settings, tracing=tracing)
        state["runtime"] = runtime
        readiness.attach_pool(runtime.pool)
        if isinstance(runtime.relay, RelayProcess):
            runtime.relay.on_unexpected_exit(relay_exited)
        settle_heap()
        runtime.start_background()
        log.info("stockworker consuming %s as group %s", commands, settings.group_id)

    @app.on_shutdown
    async def stop_consuming() -> None:
        readiness.stopping()
        # Ends any retry loop at once; the batch in hand stays uncommitted and is redone.
        if "runtime" in state:
            state["runtime"].consumer.stop()

    @app.after_shutdown
    async def close() -> None:
        if "runtime" in state:
            await state["runtime"].close()
            log.info("stockworker stopped: %s", state["runtime"].consumer.total)

    return app
