"""A Kafka consumer for unit tests of what drives one: assignment, seeks and commits."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from tests.support.builders import encode


class FakeConsumer:
    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned)
        self.seeks: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset

    def commit_in_background(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


def command_record(
    tp: TopicPartition, offset: int, body: dict[str, Any]
) -> ConsumerRecord[Any, Any]:
    """A record of `body` as the consumer hands it out (keyed by its SKU)."""
    value = encode(body)
    key = str(body.get("sku", "")).encode()
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, key, value, None, len(key), len(value), ()
    )
