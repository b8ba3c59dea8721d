"""Reading partitions from the broker byte for byte, up to a record aiokafka cannot read.

Used by `GuardedConsumer` only, after aiokafka raised on such a record: it fetches what
aiokafka's own fetch covered and returns, per partition, the records up to and
including the first one whose header key is not UTF-8 (all it read when there is
none: the unreadable one was earlier in the same batch).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest

from stockworker.adapters.kafka.record_batches import RawRecord, read_records

_READ_UNCOMMITTED = 0


async def read_up_to_unreadable(
    client: AIOKafkaClient,
    positions: dict[TopicPartition, int],
    partition_bytes: int,
    max_records: int | None,
) -> dict[TopicPartition, list[RawRecord]]:
    """For each partition with records from its position on (within `partition_bytes`):
    those up to the first unreadable one, at most `max_records` in all."""
    by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
    for tp in positions:
        leader = client.cluster.leader_for_partition(tp)
        if leader is not None and leader >= 0:
            by_leader[leader].append(tp)
    room = max_records
    found: dict[TopicPartition, list[RawRecord]] = {}
    for leader, tps in by_leader.items():
        for tp, data in (await _fetch(client, leader, tps, positions, partition_bytes)).items():
            taken = _up_to_first_unreadable(read_records(data, positions[tp]), room)
            if not taken:
                continue
            found[tp] = taken
            if room is not None:
                room -= len(taken)
                if room <= 0:
                    return found
    return found


async def _fetch(
    client: AIOKafkaClient,
    leader: int,
    tps: list[TopicPartition],
    positions: dict[TopicPartition, int],
    partition_bytes: int,
) -> dict[TopicPartition, bytes]:
    topics: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for tp in tps:
        topics[tp.topic].append((tp.partition, positions[tp], partition_bytes))
    request = FetchRequest(
        0, 1, partition_bytes * len(tps), _READ_UNCOMMITTED, list(topics.items())
    )
    response = await client.send(leader, request)
    found: dict[TopicPartition, bytes] = {}
    for topic, partition_list in response.topics:
        for partition, error_code, _highwater, *partition_data in partition_list:
            tp = TopicPartition(topic, partition)
            if not error_code and tp in positions and partition_data[-1]:
                found[tp] = partition_data[-1]
    return found


def _up_to_first_unreadable(records: Iterable[RawRecord], room: int | None) -> list[RawRecord]:
    """Records up to and including the first unreadable one, at most `room` of them.
    When none from the position on is unreadable, all of them: aiokafka decodes a batch
    whole, so an unreadable record *before* the position in the same batch still makes
    it fail, and only this reader gets past the rest of that batch."""
    taken: list[RawRecord] = []
    for record in records:
        taken.append(record)
        if record.has_undecodable_header_key:
            break
    return taken if room is None else taken[:room]


def consumer_record(tp: TopicPartition, record: RawRecord) -> ConsumerRecord[Any, Any]:
    """The record as aiokafka would have handed it out (its header keys surrogate-escaped)."""
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=record.offset,
        timestamp=record.timestamp,
        timestamp_type=record.timestamp_type,
        key=record.key,
        value=record.value,
        checksum=None,
        serialized_key_size=-1 if record.key is None else len(record.key),
        serialized_value_size=-1 if record.value is None else len(record.value),
        headers=record.headers,
    )
