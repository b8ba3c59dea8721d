"""Creating the contract's topics (idempotent)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stockworker.config.kafka import KafkaConnection, as_connection
from stockworker.service.topics import Topics


async def ensure_topics(
    kafka: KafkaConnection | str,
    topics: Topics,
    partitions: int = 6,
    replication: int = 1,
    commands_max_message_bytes: int | None = None,
    dead_letters_max_message_bytes: int | None = None,
) -> None:
    """Create the missing topics; optionally let the commands topic take larger records,
    and give the dead-letter topic the limit dead letters are built to fit
    (`record_limit(STOCKWORKER_MAX_MESSAGE_BYTES)`, see service/limits.py). The snapshot
    topic is compacted (it keeps each position's latest record, whatever its age).
    Existing topics are left as they are."""
    max_message_bytes = {
        topics.commands: commands_max_message_bytes,
        topics.dead_letters: dead_letters_max_message_bytes,
    }

    def configs(topic: str) -> dict[str, str]:
        found = {}
        if max_message_bytes.get(topic):
            found["max.message.bytes"] = str(max_message_bytes[topic])
        if topic == topics.snapshot:
            found["cleanup.policy"] = "compact"
        return found

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
                            topic_configs=configs(t),
                        )
                        for t in missing
                    ]
                )
    finally:
        await admin.close()
