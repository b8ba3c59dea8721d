"""Creating the contract's topics (idempotent)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stockworker.adapters.kafka.connection import KafkaConnection, as_connection
from stockworker.service.topics import Topics


async def ensure_topics(
    kafka: KafkaConnection | str,
    topics: Topics,
    partitions: int = 6,
    replication: int = 1,
    commands_max_message_bytes: int | None = None,
) -> None:
    """Create the missing topics; optionally let the commands topic take larger records."""
    admin = AIOKafkaAdminClient(**as_connection(kafka).client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.all() if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=partitions,
                            replication_factor=replication,
                            topic_configs=(
                                {"max.message.bytes": str(commands_max_message_bytes)}
                                if t == topics.commands and commands_max_message_bytes
                                else {}
                            ),
                        )
                        for t in missing
                    ]
                )
    finally:
        await admin.close()


async def delete_topics(kafka: KafkaConnection | str, topics: Topics) -> None:
    """Delete the contract's topics under this prefix (tests and drills clean up)."""
    admin = AIOKafkaAdminClient(**as_connection(kafka).client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics.all() if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
