"""Reading a topic's records by partition and offset range, outside any consumer group.

For operators' tools (dead letters, replay, rebuild): nothing is committed, no group is
joined, and a record whose header key is not UTF-8 is read too (through
`GuardedConsumer`; such a key arrives surrogate-escaped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from stockworker.adapters.kafka.guarded_consumer import GuardedConsumer
from stockworker.config.kafka import KafkaConnection, as_connection

Header = tuple[str, bytes | None]


class UnknownTopicOrPartition(ValueError):
    """The topic does not exist (or has no such partition)."""


@dataclass(frozen=True, slots=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]

    def header(self, name: str) -> bytes | None:
        """The last header of that name (later ones win, as in a dead letter), or None."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class PartitionBounds:
    beginning: int  # the first offset still held (retention moves it)
    end: int  # one past the last record

    @property
    def records(self) -> int:
        return self.end - self.beginning


def _record(raw: Any) -> TopicRecord:
    return TopicRecord(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        timestamp=datetime.fromtimestamp(raw.timestamp / 1000, UTC),
        key=raw.key,
        value=raw.value,
        headers=tuple(raw.headers or ()),
    )


class TopicReader:
    """`async with TopicReader(kafka) as reader:` then bounds, offsets by time, reads."""

    def __init__(self, kafka: KafkaConnection | str, fetch_max_bytes: int = 8 * 1024 * 1024):
        self._options = {
            **as_connection(kafka).client_options(),
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_bytes": fetch_max_bytes,
            "max_partition_fetch_bytes": fetch_max_bytes,
        }

    async def __aenter__(self) -> TopicReader:
        # Made here, not in __init__: a reader never entered leaves no client to close.
        self._consumer = GuardedConsumer(**self._options)
        try:
            await self._consumer.start()
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions, sorted; UnknownTopicOrPartition when it has none."""
        found = self._consumer.partitions_for_topic(topic)
        if not found:
            # Outside a group the client fetches metadata for the topics it was told of.
            client = self._consumer._client
            await client.add_topic(topic)
            found = client.cluster.partitions_for_topic(topic)
        if not found:
            raise UnknownTopicOrPartition(f"topic {topic!r} does not exist")
        return sorted(found)

    async def _partitions(self, topic: str, partitions: list[int] | None) -> list[TopicPartition]:
        existing = await self.partitions(topic)
        chosen = existing if partitions is None else sorted(set(partitions))
        unknown = [p for p in chosen if p not in existing]
        if unknown:
            raise UnknownTopicOrPartition(
                f"topic {topic!r} has no partition {', '.join(map(str, unknown))} "
                f"(it has {len(existing)}: 0 to {len(existing) - 1})"
            )
        return [TopicPartition(topic, p) for p in chosen]

    async def bounds(
        self, topic: str, partitions: list[int] | None = None
    ) -> dict[int, PartitionBounds]:
        """Per partition: the first offset held and one past the last."""
        tps = await self._partitions(topic, partitions)
        beginning = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        return {tp.partition: PartitionBounds(beginning[tp], end[tp]) for tp in tps}

    async def offsets_at(
        self, topic: str, moment: datetime, partitions: list[int] | None = None
    ) -> dict[int, int]:
        """Per partition: the first offset whose timestamp is at or after `moment`, or the
        end offset when there is none (Kafka's offsets_for_times, completed)."""
        tps = await self._partitions(topic, partitions)
        found = await self._consumer.offsets_for_times(
            {tp: int(moment.timestamp() * 1000) for tp in tps}
        )
        end = await self._consumer.end_offsets(tps)
        return {tp.partition: (end[tp] if found[tp] is None else found[tp].offset) for tp in tps}

    async def read(
        self, topic: str, ranges: Mapping[int, tuple[int, int]], batch: int = 500
    ) -> AsyncIterator[list[TopicRecord]]:
        """The records of [start, end) per partition, in batches, each partition's in
        offset order. Records the broker no longer holds (retention, compaction) are
        skipped (a gap shows in the offsets); a range past the end stops at the end."""
        held = await self.bounds(topic, list(ranges))
        clamped = {
            p: (max(start, held[p].beginning), min(end, held[p].end))
            for p, (start, end) in ranges.items()
        }
        wanted = {
            TopicPartition(topic, p): (start, end)
            for p, (start, end) in clamped.items()
            if end > start
        }
        if not wanted:
            return
        self._consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            self._consumer.seek(tp, start)
        remaining = dict(wanted)
        while remaining:
            fetched = await self._consumer.getmany(*remaining, timeout_ms=1000, max_records=batch)
            out: list[TopicRecord] = []
            for tp, records in fetched.items():
                end = remaining[tp][1]
                out.extend(_record(r) for r in records if r.offset < end)
            for tp in list(remaining):
                if await self._consumer.position(tp) >= remaining[tp][1]:
                    del remaining[tp]
                    self._consumer.pause(tp)
            if out:
                yield out

    async def read_one(self, topic: str, partition: int, offset: int) -> TopicRecord | None:
        """The record at that offset, or None when the broker no longer holds it."""
        bounds = (await self.bounds(topic, [partition]))[partition]
        if not bounds.beginning <= offset < bounds.end:
            return None
        async for records in self.read(topic, {partition: (offset, offset + 1)}):
            for record in records:
                if record.offset == offset:
                    return record
        return None
