"""Publishing outbox messages to Kafka with an idempotent producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from stockworker.adapters.kafka.connection import KafkaConnection, as_connection
from stockworker.service.ports import OutboxMessage


class KafkaPublisher:
    """Sends a batch and returns only when the broker has acknowledged all of it.

    Idempotence (acks=all, sequence numbers) keeps each partition in send order across
    the producer's own retries, which per-SKU event order relies on.
    """

    def __init__(self, kafka: KafkaConnection | str) -> None:
        self._producer = AIOKafkaProducer(
            **as_connection(kafka).client_options(),
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=512 * 1024,
            request_timeout_ms=30_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        futures = []
        for m in messages:
            headers = [*m.headers, ("event_id", str(m.event_id).encode())]
            futures.append(await self._producer.send(m.topic, m.value, key=m.key, headers=headers))
        await asyncio.gather(*futures)
