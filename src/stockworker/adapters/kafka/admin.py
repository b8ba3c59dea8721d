"""Creating the contract's topics (idempotent)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stockworker.adapters.kafka.connection import KafkaConnection, as_connection
from stockworker.service.topics import Topics


async def ensure_topics(
    kafka: KafkaConnection | str, topics: Topics, partitions: int = 6, replication: int = 1
) -> None:
    admin = AIOKafkaAdminClient(**as_connection(kafka).client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.all() if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=partitions, replication_factor=replication)
                        for t in missing
                    ]
                )
    finally:
        await admin.close()
