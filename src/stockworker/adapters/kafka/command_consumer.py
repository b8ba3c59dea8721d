"""Feeds batches of command records to the service and commits their offsets after.

Offsets are committed per partition, explicitly, only once the transaction that
applied the batch has committed. Transient failures are retried here with capped
exponential backoff and jitter, without committing and without dead-lettering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from stockworker.faults import crash_point
from stockworker.service.command_batch import BatchReport, CommandBatchService
from stockworker.service.ports import InboundRecord

log = logging.getLogger(__name__)


def inbound(record: ConsumerRecord[Any, Any]) -> InboundRecord:
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
    )


def next_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """For each partition, the offset to commit: one past its last record in the batch."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets


class CommandConsumer:
    def __init__(
        self,
        service: CommandBatchService,
        is_transient: Callable[[BaseException], bool],
        retry_initial_seconds: float = 0.1,
        retry_max_seconds: float = 10.0,
        describe_failure: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
    ) -> None:
        self._service = service
        self._is_transient = is_transient
        self._describe = describe_failure
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self.stopping = asyncio.Event()
        self.total = BatchReport()

    async def handle(
        self, records: Sequence[ConsumerRecord[Any, Any]], consumer: AIOKafkaConsumer
    ) -> None:
        if not records:
            return
        try:
            report = await self._process_with_retry([inbound(r) for r in records])
        except Exception as exc:
            # Nothing of this batch may be skipped: rewind so it is fetched again, after a
            # pause so that an unexpected, repeating failure cannot spin the CPU.
            log.error("unexpected failure applying a batch (%s); it will be retried",
                      self._describe(exc))  # fmt: skip
            self._rewind(records, consumer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self._retry_max)
            return
        except BaseException:
            self._rewind(records, consumer)
            raise
        if report is None:  # stopping before it could be applied: leave it uncommitted
            self._rewind(records, consumer)
            return
        self.total += report
        crash_point("after-db-commit")
        await self._commit(next_offsets(records), consumer)

    async def _process_with_retry(self, records: list[InboundRecord]) -> BatchReport | None:
        delay = self._retry_initial
        while True:
            try:
                return await self._service.process(records)
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                if self.stopping.is_set():
                    return None
                pause = delay * random.uniform(0.5, 1.0)
                log.warning("transient failure applying a batch, retrying in %.2fs: %s",
                            pause, self._describe(exc))  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), pause)
                delay = min(delay * 2, self._retry_max)

    @staticmethod
    def _rewind(records: Sequence[ConsumerRecord[Any, Any]], consumer: AIOKafkaConsumer) -> None:
        earliest: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            earliest[tp] = min(earliest.get(tp, r.offset), r.offset)
        for tp, offset in earliest.items():
            # No longer assigned: its new owner starts from the committed offset.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(tp, offset)

    @staticmethod
    async def _commit(offsets: dict[TopicPartition, int], consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        owned = {tp: o for tp, o in offsets.items() if tp in assigned}
        if not owned:
            return
        try:
            await consumer.commit(owned)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # Lost the partitions in a rebalance: the new owner re-reads these records and
            # the inbox turns them into duplicates. Correct, merely repeated work.
            log.warning("offset commit failed (%r); records will be redelivered", exc)
