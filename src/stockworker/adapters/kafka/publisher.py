"""Publishing outbox messages to Kafka with an idempotent producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidTopicError, MessageSizeTooLargeError, RecordListTooLargeError

from stockworker.config.kafka import KafkaConnection, as_connection
from stockworker.domain.decoding import DEFAULT_MAX_MESSAGE_BYTES
from stockworker.service.limits import EVENT_ID_HEADER, record_limit
from stockworker.service.ports import NotSent, OutboxMessage

__all__ = ["KafkaPublisher", "NotAcknowledged", "NotSent", "is_unpublishable"]

# Errors that say the broker (or the producer) will never take this record, whatever
# the state of the cluster: it is too large for the producer, the topic or a segment, or
# its topic name is invalid. Anything else (broker unreachable, timeouts, not the leader,
# unknown topic, authorisation, errors aiokafka cannot name) may pass or be fixed without
# touching the row, so the row is retried, in order, rather than set aside.
_UNPUBLISHABLE = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError)


def is_unpublishable(exc: Exception) -> bool:
    """True when a message that failed on its own can never be published as it is."""
    return isinstance(exc, _UNPUBLISHABLE)


class NotAcknowledged(Exception):
    """The producer gave up on the message without an error of its own (cancelled)."""


class KafkaPublisher:
    """Sends a batch and returns when the broker has answered for all of it.

    Idempotence (acks=all, sequence numbers) keeps each partition in send order across
    the producer's own retries, which per-SKU event order relies on. After any failure
    the producer must not be used again: a batch the broker refused leaves a gap in its
    partition's sequence numbers, and every later batch of that partition fails too.
    """

    def __init__(
        self,
        kafka: KafkaConnection | str,
        max_record_bytes: int = record_limit(DEFAULT_MAX_MESSAGE_BYTES),
    ) -> None:
        self._producer = AIOKafkaProducer(
            **as_connection(kafka).client_options(),
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=512 * 1024,
            max_request_size=max_record_bytes,
            request_timeout_ms=30_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[Exception | None]:
        """Send in order; per message, None once the broker acknowledged it, or its error.

        When the producer refuses to take a message (too large, no metadata for its
        topic), the ones after it are not sent (`NotSent`): none of them may overtake it
        in its partition. Messages already handed over are all waited for.
        """
        futures: list[asyncio.Future[object]] = []
        refused: Exception | None = None
        for m in messages:
            headers = [*m.headers, (EVENT_ID_HEADER, str(m.event_id).encode())]
            try:
                futures.append(
                    await self._producer.send(m.topic, m.value, key=m.key, headers=headers)
                )
            except Exception as exc:
                refused = exc
                break
        if futures:
            # All this call sends is handed over and will be waited for: close the
            # batches so they go now, not after linger_ms. (aiokafka's transactional
            # commit does the same; it has no public call for it.) The relay awaits its
            # snapshots before a batch's events, so this saves a linger per step.
            await self._producer._message_accumulator.flush_for_commit()
        answers = await asyncio.gather(*futures, return_exceptions=True)
        results = [_error(a) for a in answers]
        if refused is not None:
            results.append(refused)
            results.extend(NotSent() for _ in range(len(messages) - len(results)))
        return results


def _error(answer: object) -> Exception | None:
    if isinstance(answer, Exception):
        return answer
    if isinstance(answer, BaseException):
        return NotAcknowledged(repr(answer))
    return None
