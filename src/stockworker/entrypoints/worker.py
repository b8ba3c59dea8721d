"""The FastStream application: a thin shell around the command consumer.

Kafka records reach the handler untouched (a custom parser and decoder skip
FastStream's own decoding, which would fail on non-UTF-8 headers), in batches,
with manual acknowledgement: offsets are committed by CommandConsumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy, Context, FastStream
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from stockworker.adapters.kafka.guarded_consumer import GuardedConsumer
from stockworker.adapters.relay_process import RelayProcess
from stockworker.bootstrap import Runtime, build_runtime
from stockworker.config import Settings
from stockworker.entrypoints.runner import settle_heap
from stockworker.service.topics import Topics

log = logging.getLogger(__name__)


class GuardedKafkaBroker(KafkaBroker):
    """FastStream's Kafka broker, with GuardedConsumer for every subscriber.

    FastStream builds consumers from a factory it makes when it connects; this swaps
    in the same options for a GuardedConsumer (tests/e2e check the swap took).
    """

    async def _connect(self) -> Callable[..., AIOKafkaConsumer]:
        built = await super()._connect()
        assert isinstance(built, partial), "FastStream's consumer factory changed shape"
        guarded = partial(GuardedConsumer, *built.args, **built.keywords)
        self.config.broker_config.builder = guarded
        return guarded


async def _raw_batch(
    records: tuple[ConsumerRecord[Any, Any], ...], _original: Any
) -> StreamMessage[tuple[ConsumerRecord[Any, Any], ...]]:
    return StreamMessage(raw_message=records, body=b"", message_id=f"batch-{id(records)}")


async def _no_decode(_message: StreamMessage[Any], _original: Any) -> None:
    return None


def _broker(settings: Settings) -> GuardedKafkaBroker:
    kafka = settings.kafka()
    # graceful_timeout: on shutdown the broker waits this long for the batch in hand, so
    # it is finished and its offsets committed rather than redone after the restart.
    # Per-batch "Received"/"Processed" lines only at DEBUG: at thousands of commands a
    # second they would drown the log.
    return GuardedKafkaBroker(
        kafka.bootstrap_servers,
        security=kafka.security(),
        graceful_timeout=settings.shutdown_grace_seconds,
        logger=log,
        log_level=logging.DEBUG,
    )


def _subscribe(broker: GuardedKafkaBroker, settings: Settings, state: dict[str, Runtime]) -> None:
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
        decoder=_no_decode,
        title="stock commands",
        description="Stock commands, applied in batches; offsets committed after the database.",
    )

    @subscriber
    async def apply_commands(message: StreamMessage[Any] = Context("message")) -> None:  # noqa: B008
        assert subscriber.consumer is not None
        await state["runtime"].consumer.handle(message.raw_message, subscriber.consumer)


@dataclass
class WorkerExit:
    """The worker's exit code: 0, or its relay process's when that ended it."""

    code: int = 0


def create_app(settings: Settings, ending: WorkerExit | None = None) -> FastStream:
    broker = _broker(settings)
    state: dict[str, Runtime] = {}
    _subscribe(broker, settings, state)
    app = FastStream(broker, logger=log)
    outcome = ending or WorkerExit()

    def relay_exited(code: int) -> None:
        # A shutdown like SIGTERM's: the batch in hand finishes and commits first.
        outcome.code = code if code > 0 else 1
        app.exit()

    @app.on_startup
    async def start() -> None:
        runtime = await build_runtime(settings)
        state["runtime"] = runtime
        if isinstance(runtime.relay, RelayProcess):
            runtime.relay.on_unexpected_exit(relay_exited)
        settle_heap()
        runtime.start_background()
        commands = Topics(settings.topic_prefix).commands
        log.info("stockworker consuming %s as group %s", commands, settings.group_id)

    @app.on_shutdown
    async def stop_consuming() -> None:
        # Ends any retry loop at once; the batch in hand stays uncommitted and is redone.
        if "runtime" in state:
            state["runtime"].consumer.stop()

    @app.after_shutdown
    async def close() -> None:
        if "runtime" in state:
            await state["runtime"].close()
            log.info("stockworker stopped: %s", state["runtime"].consumer.total)

    return app
