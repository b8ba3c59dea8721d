"""A Kafka consumer that never lets a record slip by unseen.

aiokafka's `getmany` drains partition after partition and moves each one's position as
it goes. When a record cannot be read (a header key that is not UTF-8 makes it raise
while fetching), the records it already drained from other partitions are dropped with
the exception, their positions stay moved, and the next commit would skip them; the
partition holding the record stays stuck on it. `GuardedConsumer` closes both holes:

- it remembers, per partition, the position up to which every record was handed out,
  and puts a partition back there whenever it finds it moved further without handing
  anything out (a failed fetch, or anything else); a jump that comes back after such a
  rewind is real (records deleted by retention) and is then accepted;
- a record aiokafka cannot read is read from the broker byte for byte
  (`record_batches`) and handed out with the records before it, its header keys
  surrogate-escaped, so that the worker dead-letters it and goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CorruptRecordException, IllegalStateError
from aiokafka.protocol.fetch import FetchRequest

from stockworker.adapters.kafka.record_batches import RawRecord, read_records

log = logging.getLogger(__name__)

# What aiokafka raises for a record it cannot read: the C extension lets the
# UnicodeDecodeError of a header key through, the pure-Python reader wraps it.
UNREADABLE_RECORD_ERRORS = (UnicodeDecodeError, CorruptRecordException)
_READ_UNCOMMITTED = 0
_RAW_FETCH_PARTITION_BYTES = 8 * 1024 * 1024
_RAW_FETCH_TIMEOUT_SECONDS = 30.0
_MAX_BACKOFF_SECONDS = 5.0

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


class GuardedConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, *topics: str, **options: Any) -> None:
        if options.get("isolation_level", "read_uncommitted") != "read_uncommitted":
            # The raw reader skips transaction markers but not aborted transactions.
            raise ValueError("GuardedConsumer reads uncommitted records only")
        super().__init__(*topics, **options)
        # Per partition: every record before this position has been handed out.
        self._handed_out_to: dict[TopicPartition, int] = {}
        self._assignment_seen: object | None = None
        # A rewind not yet confirmed: partition -> (where it should be, where it was).
        self._rewound: dict[TopicPartition, tuple[int, int]] = {}
        self._failures = 0

    def seek(self, partition: TopicPartition, offset: int) -> None:
        super().seek(partition, offset)
        self._handed_out_to[partition] = offset

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch:
        self._check_positions()
        try:
            batch: Batch = await super().getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
        except UNREADABLE_RECORD_ERRORS as exc:
            return await self._get_past_unreadable(exc, max_records)
        except BaseException:
            self._rewind_known()
            raise
        self._failures = 0
        self._note_positions()
        return batch

    # -- positions ---------------------------------------------------------------------

    def _assignment(self) -> Any:
        """aiokafka's current assignment (a new object after every rebalance), or None."""
        subscription = self._subscription.subscription
        return None if subscription is None else subscription.assignment

    def _position_now(self, tp: TopicPartition) -> int | None:
        """The partition's fetch position without waiting (None while it awaits a reset)."""
        assignment = self._assignment()
        if assignment is None or tp not in assignment.tps:
            return None
        state = assignment.state_value(tp)
        return state.position if state.has_valid_position else None

    def _check_positions(self) -> None:
        assignment = self._assignment()
        if assignment is not self._assignment_seen:
            # A new assignment starts every partition at its committed offset.
            self._handed_out_to.clear()
            self._rewound.clear()
            self._assignment_seen = assignment
        for tp, expected in list(self._handed_out_to.items()):
            position = self._position_now(tp)
            if position is None or position == expected:
                self._rewound.pop(tp, None)
                continue
            if self._rewound.get(tp) == (expected, position):
                log.warning(
                    "partition %s: offsets %d to %d cannot be read any more (deleted by "
                    "retention?); going on from %d", tp, expected, position - 1, position,
                )  # fmt: skip
                del self._rewound[tp]
                self._handed_out_to[tp] = position
                continue
            log.warning(
                "partition %s moved from %d to %d without handing out those records; "
                "reading them again", tp, expected, position,
            )  # fmt: skip
            self._rewound[tp] = (expected, position)
            super().seek(tp, expected)

    def _note_positions(self) -> None:
        assignment = self._assignment()
        if assignment is None:
            return
        self._assignment_seen = assignment
        for tp in assignment.tps:
            position = self._position_now(tp)
            if position is not None:
                self._handed_out_to[tp] = position

    async def _restart_point(self, tp: TopicPartition) -> int:
        known = self._handed_out_to.get(tp)
        if known is not None:
            return known
        # Assigned during the failed fetch: nothing was handed out since the last commit.
        committed = await self.committed(tp)
        if committed is not None:
            return int(committed)
        beginning = await self.beginning_offsets([tp])
        return int(beginning[tp])

    def _rewind_known(self) -> None:
        """After a failed fetch: partitions go back to where their handed-out records end."""
        for tp, offset in self._handed_out_to.items():
            if self._position_now(tp) not in (None, offset):
                super().seek(tp, offset)

    async def _rewind_all(self) -> dict[TopicPartition, int]:
        """Like `_rewind_known`, also for partitions assigned during the failed fetch."""
        rewound: dict[TopicPartition, int] = {}
        for tp in self.assignment():
            try:
                offset = await self._restart_point(tp)
                self.seek(tp, offset)
                rewound[tp] = offset
            except IllegalStateError:  # revoked meanwhile: its new owner starts from the commit
                continue
        return rewound

    # -- a record aiokafka cannot read ------------------------------------------------

    async def _get_past_unreadable(self, exc: BaseException, max_records: int | None) -> Batch:
        self._failures += 1
        positions = await self._rewind_all()
        try:
            batch = await asyncio.wait_for(
                self._read_up_to_unreadable(positions, max_records), _RAW_FETCH_TIMEOUT_SECONDS
            )
        except Exception as raw_exc:
            log.warning("could not read the partitions byte for byte: %r", raw_exc)
            batch = {}
        if batch:
            self._failures = 0
            return batch
        # Not a record this consumer can get past: wait, so a persistent failure cannot
        # spin, and say so once rather than on every attempt.
        if self._failures == 1:
            log.warning("fetching commands failed (%r); retrying with backoff", exc)
        await asyncio.sleep(min(0.1 * 2**self._failures, _MAX_BACKOFF_SECONDS))
        return {}

    async def _read_up_to_unreadable(
        self, positions: dict[TopicPartition, int], max_records: int | None
    ) -> Batch:
        """For each partition holding a record aiokafka cannot read: the records up to it."""
        by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in positions:
            leader = self._client.cluster.leader_for_partition(tp)
            if leader is not None and leader >= 0:
                by_leader[leader].append(tp)
        batch: Batch = {}
        for leader, tps in by_leader.items():
            for tp, records in (await self._fetch_raw(leader, tps, positions)).items():
                taken = _up_to_first_unreadable(records, max_records)
                if not taken:
                    continue
                bad = taken[-1]
                if bad.has_undecodable_header_key:
                    log.warning(
                        "partition %s offset %d: a header key is not UTF-8; the record is "
                        "handed over as read from the broker", tp, bad.offset,
                    )  # fmt: skip
                batch[tp] = [_consumer_record(tp, r) for r in taken]
                self.seek(tp, taken[-1].offset + 1)
        return batch

    async def _fetch_raw(
        self, leader: int, tps: list[TopicPartition], positions: dict[TopicPartition, int]
    ) -> dict[TopicPartition, list[RawRecord]]:
        topics: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for tp in tps:
            topics[tp.topic].append((tp.partition, positions[tp], _RAW_FETCH_PARTITION_BYTES))
        request = FetchRequest(
            0, 1, _RAW_FETCH_PARTITION_BYTES * len(tps), _READ_UNCOMMITTED, list(topics.items())
        )
        response = await self._client.send(leader, request)
        found: dict[TopicPartition, list[RawRecord]] = {}
        for topic, partitions in response.topics:
            for partition, error_code, _highwater, *partition_data in partitions:
                tp = TopicPartition(topic, partition)
                if error_code or tp not in positions or not partition_data[-1]:
                    continue
                found[tp] = list(read_records(partition_data[-1], positions[tp]))
        return found


def _up_to_first_unreadable(records: list[RawRecord], max_records: int | None) -> list[RawRecord]:
    """Records up to and including the first unreadable one; none if all are readable."""
    for index, record in enumerate(records):
        if record.has_undecodable_header_key:
            taken = records[: index + 1]
            return taken if max_records is None else taken[:max_records]
    return []


def _consumer_record(tp: TopicPartition, record: RawRecord) -> ConsumerRecord[Any, Any]:
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
