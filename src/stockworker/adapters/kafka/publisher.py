"""Publishing outbox messages to Kafka with librdkafka's idempotent producer (confluent-kafka).

The producer's calls that wait (creating it, flushing, purging, closing) run on one
thread of the publisher's own, one at a time, never on the event loop. Delivery reports
are served by `flush`, which also sends what is queued at once, without the linger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from stockworker.config.kafka import KafkaConnection, as_connection
from stockworker.domain.decoding import DEFAULT_MAX_MESSAGE_BYTES
from stockworker.service.limits import EVENT_ID_HEADER, record_limit
from stockworker.service.ports import NotSent, OutboxMessage

__all__ = [
    "InvalidTopicError",
    "KafkaPublishError",
    "KafkaPublisher",
    "MessageSizeTooLargeError",
    "NotAcknowledged",
    "NotSent",
    "RecordListTooLargeError",
    "is_unpublishable",
    "publish_error",
]

log = logging.getLogger(__name__)
# librdkafka's own log lines, warnings and errors only (log_level 4).
librdkafka_log = logging.getLogger(f"{__name__}.librdkafka")

T = TypeVar("T")

# How long a publish waits for the broker's answers before giving up on the rest.
DELIVERY_TIMEOUT_SECONDS = 30.0
# How long the reports of what was given up (purged) may take to be served.
_DRAIN_SECONDS = 10.0
# One flush call at most this long, so a publish notices its deadline.
_FLUSH_SLICE_SECONDS = 1.0


class KafkaPublishError(Exception):
    """A message librdkafka did not deliver, with its error (a `KafkaError`).

    Reads `MSG_SIZE_TOO_LARGE: Broker: Message size too large`, the error's name and
    librdkafka's description, so a log line or a parked row's reason names the cause.
    """

    def __init__(self, error: KafkaError) -> None:
        super().__init__(error)
        self.error = error

    @property
    def code(self) -> int:
        return self.error.code()

    def __str__(self) -> str:
        return f"{self.error.name()}: {self.error.str()}"


class MessageSizeTooLargeError(KafkaPublishError):
    """Above the producer's limit (`message.max.bytes`) or the topic's `max.message.bytes`."""


class RecordListTooLargeError(KafkaPublishError):
    """A batch larger than the broker's segment size."""


class InvalidTopicError(KafkaPublishError):
    """A topic name Kafka does not allow (librdkafka's TOPIC_EXCEPTION)."""


_KINDS: dict[int, type[KafkaPublishError]] = {
    KafkaError.MSG_SIZE_TOO_LARGE: MessageSizeTooLargeError,
    KafkaError.RECORD_LIST_TOO_LARGE: RecordListTooLargeError,
    KafkaError.TOPIC_EXCEPTION: InvalidTopicError,
}


def publish_error(error: KafkaError) -> KafkaPublishError:
    """The exception for librdkafka's error about one message."""
    return _KINDS.get(error.code(), KafkaPublishError)(error)


def is_unpublishable(exc: Exception) -> bool:
    """True when a message that failed on its own can never be published as it is.

    Only errors that say the broker (or the producer) will never take this record,
    whatever the state of the cluster: too large for the producer, the topic or a
    segment, or an invalid topic name. Anything else (broker unreachable, timeouts,
    not the leader, unknown topic, authorisation, a fatal producer error, errors
    librdkafka cannot name) may pass or be fixed without touching the row, so the row
    is retried, in order, rather than set aside.
    """
    if isinstance(exc, KafkaPublishError):
        return exc.code in _KINDS
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code() in _KINDS
    return False


class NotAcknowledged(Exception):
    """No delivery report came for the message: the producer failed, or did not answer in
    time and was made to give up everything it still held."""


class _LibrdkafkaLog:
    """Takes librdkafka's log lines (as confluent-kafka hands them to a `logger`) into
    Python's logging, toning down the two it writes because of settings chosen here."""

    def log(self, level: int, message: str, *args: Any) -> None:
        text = str(args[-1]) if args else ""
        if "enable.gapless.guarantee is experimental" in text:
            level = logging.DEBUG  # chosen on purpose: not worth a warning per producer
        elif "Gap-less ordering would not be guaranteed" in text:
            # A refused batch ended the producer so that nothing behind it overtakes
            # it: the relay reports the refused row and replaces the producer.
            level = min(level, logging.WARNING)
        librdkafka_log.log(level, message, *args)


# Per message sent: None once acknowledged, or librdkafka's error.
_Reports = dict[int, KafkaError | None]


def _report(reports: _Reports, index: int, error: KafkaError | None, _message: object) -> None:
    """A delivery report, served by `flush` on the publisher's thread.

    Only a store: when a fatal error is raised, confluent-kafka may call the next report
    with that exception still set, and anything that checks for errors (building an
    exception, say) would then fail and lose the report.
    """
    reports[index] = error


class KafkaPublisher:
    """Sends a batch and returns when the broker has answered for all of it.

    Idempotence (acks=all, sequence numbers) keeps each partition in send order across
    the producer's own retries, which per-SKU event order relies on. The gap-less
    guarantee makes a batch the broker refuses end the producer (a fatal error): the
    batches behind it in its partition are not written, they fail too, so none of them
    overtakes the refused one. After any failure the producer must not be used again.

    librdkafka never times a message out on its own (`message.timeout.ms` 0): a message
    timed out in its queue would let later messages of its partition through. A publish
    instead gives up after `delivery_timeout_seconds` on everything the producer still
    holds, at once (purged, queued and in flight), which fails those messages together.

    Keys choose partitions as Java's producer and aiokafka do (murmur2), so a SKU's
    events stay on the partition they always went to.
    """

    def __init__(
        self,
        kafka: KafkaConnection | str,
        max_record_bytes: int = record_limit(DEFAULT_MAX_MESSAGE_BYTES),
        delivery_timeout_seconds: float = DELIVERY_TIMEOUT_SECONDS,
        librdkafka_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        connection = as_connection(kafka)
        connection.check_tls_files()
        self._max_record_bytes = max_record_bytes
        self._delivery_timeout = delivery_timeout_seconds
        self._config: dict[str, Any] = {
            **connection.librdkafka_config(),
            "enable.idempotence": True,  # implies acks=all, max.in.flight <= 5
            "enable.gapless.guarantee": True,
            "message.timeout.ms": 0,  # never: see the class docstring
            "linger.ms": 1,
            "batch.size": 512 * 1024,
            "message.max.bytes": max_record_bytes,
            "partitioner": "murmur2_random",
            "log_level": 4,  # warnings and errors
            "log.connection.close": False,  # brokers close idle connections routinely
            "logger": _LibrdkafkaLog(),
            **(librdkafka_overrides or {}),
        }
        self._producer: Producer | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-publisher")

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """On the publisher's thread, after whatever was called before it there."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def start(self) -> None:
        if self._producer is None:
            self._producer = await self._call(Producer, self._config)

    async def stop(self) -> None:
        # Handed over in a list the thread empties, so that the last reference, and with
        # it librdkafka's destroy when close() was not possible, goes on that thread.
        held = [self._producer] if self._producer is not None else []
        self._producer = None
        try:
            if held:
                await self._call(_close, held)
        finally:
            self._thread.shutdown(wait=False)

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[Exception | None]:
        """Send in order; per message, None once the broker acknowledged it, or its error.

        When the producer refuses to take a message (too large for `message.max.bytes`,
        its queue full, a fatal error earlier), the ones after it are not sent
        (`NotSent`): none of them may overtake it in its partition. Messages already
        handed over are all waited for.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaPublisher.publish() before start()")
        reports: _Reports = {}
        refused: Exception | None = None
        sent = 0
        for m in messages:
            headers: list[tuple[str, str | bytes | None]] = [
                *m.headers,
                (EVENT_ID_HEADER, str(m.event_id).encode()),
            ]
            try:
                producer.produce(
                    m.topic,
                    m.value,
                    m.key,
                    headers=headers,
                    on_delivery=functools.partial(_report, reports, sent),
                )
            except KafkaException as exc:
                refused = self._refused(exc)
                break
            except Exception as exc:  # BufferError: its queue is full; a header it cannot encode
                refused = exc
                break
            sent += 1
        gave_up = await self._wait(producer, reports, sent) if sent else None
        results = [_result(reports, i, gave_up) for i in range(sent)]
        if refused is not None:
            results.append(refused)
            results.extend(NotSent() for _ in range(len(messages) - len(results)))
        return results

    def _refused(self, exc: KafkaException) -> Exception:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError):
            return exc
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            error = KafkaError(
                error.code(),
                f"refused by the producer: above its limit of {self._max_record_bytes} bytes "
                "(message.max.bytes)",
            )
        return publish_error(error)

    async def _wait(self, producer: Producer, reports: _Reports, count: int) -> str | None:
        """Until every message sent has its report; None, or why it gave up on the rest.

        At the deadline, or on a fatal error (flush raises it once; the producer then
        keeps what it had in flight and never sends it), everything the producer still
        holds is given up at once.
        """
        deadline = time.monotonic() + self._delivery_timeout
        gave_up = f"no answer from the broker within {self._delivery_timeout:g} s"
        while len(reports) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await self._call(producer.flush, min(remaining, _FLUSH_SLICE_SECONDS))
            except Exception as exc:
                gave_up = f"the producer failed: {_describe(exc)}"
                break
        else:
            return None
        log.debug("publish: %s", gave_up)
        await self._call(_give_up, producer, reports, count)
        return gave_up


_PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)


def _result(reports: _Reports, index: int, gave_up: str | None) -> Exception | None:
    """The outcome of one message; when the publish gave up, the messages purged (by it,
    or by librdkafka after a fatal error) or never reported say why."""
    if index in reports:
        error = reports[index]
        if error is None:
            return None
        if not (gave_up and error.code() in _PURGED):
            return publish_error(error)
    return NotAcknowledged(gave_up or "no delivery report")


def _describe(exc: BaseException) -> str:
    """A fatal KafkaException is often raised as the cause of a SystemError (a delivery
    report served while it was pending): name the KafkaError."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
            return f"{e.args[0].name()}: {e.args[0].str()}"
    return f"{type(exc).__name__}: {exc}"


def _give_up(producer: Producer, reports: _Reports, count: int) -> None:
    """Fail everything the producer holds, queued and in flight, and serve the reports.

    In flight, a message may have been written all the same: it is republished later,
    at least once as ever."""
    with contextlib.suppress(KafkaException):
        producer.purge(in_queue=True, in_flight=True)
    _drain(producer, lambda: len(reports) >= count or len(producer) == 0)


def _drain(producer: Producer, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _DRAIN_SECONDS
    while not done() and (remaining := deadline - time.monotonic()) > 0:
        with contextlib.suppress(Exception):  # a fatal error is raised once, then served
            producer.flush(min(remaining, _FLUSH_SLICE_SECONDS))


def _close(held: list[Producer]) -> None:
    """Nothing is outstanding after a publish returned; after a cancelled one, what is
    left is given up (its rows stay unpublished and go out again)."""
    producer = held.pop()
    with contextlib.suppress(KafkaException):
        producer.purge(in_queue=True, in_flight=True)
    _drain(producer, lambda: len(producer) == 0)
    if len(producer) == 0:
        producer.close()  # flushes (nothing left), then destroys
    # Otherwise it is destroyed here, as `producer` goes (close would wait forever).
