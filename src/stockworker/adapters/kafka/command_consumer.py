"""Feeds batches of command records to the service and commits their offsets after.

Offsets are committed per partition, explicitly, only once the transaction that
applied the batch has committed (in the background: the next batch does not wait for
the commit). Transient failures are retried here with capped exponential backoff and
jitter, without committing and without dead-lettering.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition

from stockworker.adapters.tracing import BatchTracing, NoTracing
from stockworker.faults import crash_point
from stockworker.service.batch_state import BatchReport
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.loops import Backoff, Stop, retry
from stockworker.service.observation import NO_OBSERVER, Observer
from stockworker.service.ports import InboundRecord

log = logging.getLogger(__name__)


class BatchConsumer(Protocol):
    """What the command consumer needs of a Kafka consumer (aiokafka's, or a fake)."""

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def commit_in_background(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit after every earlier commit, without waiting; a failure is logged."""


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


def first_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """For each partition, where the batch began: where to read again to redo it."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = min(offsets.get(tp, r.offset), r.offset)
    return offsets


class CommandConsumer:
    def __init__(
        self,
        service: CommandBatchService,
        is_transient: Callable[[BaseException], bool],
        backoff: Backoff | None = None,
        describe_failure: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
        observer: Observer = NO_OBSERVER,
        tracing: BatchTracing | None = None,
    ) -> None:
        self._service = service
        self._observer = observer
        self._tracing = tracing or NoTracing()
        self._is_transient = is_transient
        self._describe = describe_failure
        self._backoff = backoff or Backoff()
        self._stop = Stop()
        self.total = BatchReport()

    def stop(self) -> None:
        """End any retry at once; the batch in hand stays uncommitted and is redone."""
        self._stop.set()

    async def handle(
        self, records: Sequence[ConsumerRecord[Any, Any]], consumer: BatchConsumer
    ) -> None:
        if not records:
            return
        batch, spans = self._tracing.begin([inbound(r) for r in records])
        try:
            report = await retry(
                lambda: self._apply(batch),
                retry_on=self._is_transient,
                backoff=self._backoff,
                what="applying a batch",
                stop=self._stop,
                describe=self._describe,
                on_retry=self._observer.retried,
            )
        except Exception as exc:
            # Nothing of this batch may be skipped: rewind so it is fetched again, after a
            # pause so that an unexpected, repeating failure cannot spin the CPU.
            self._tracing.end(spans, exc)
            reason = self._describe(exc)
            log.error("unexpected failure applying a batch (%s); it will be retried", reason)
            self._rewind(records, consumer)
            await self._stop.wait(self._backoff.max_seconds)
            return
        except BaseException as exc:
            self._tracing.end(spans, exc)
            self._rewind(records, consumer)
            raise
        self._tracing.end(spans)
        if report is None:  # stopping before it could be applied: leave it uncommitted
            self._rewind(records, consumer)
            return
        self.total = self.total.totals_plus(report)
        crash_point("after-db-commit")
        # Not awaited: the next batch is applied while the commit travels. It is asked
        # for only now, after the database commit; a lost one means records come again.
        consumer.commit_in_background(next_offsets(records))

    async def _apply(self, batch: list[InboundRecord]) -> BatchReport:
        """One attempt at the batch, timed (the transaction's commit included)."""
        started = time.perf_counter()
        report = await self._service.process(batch)
        self._observer.batch_applied(report, len(batch), time.perf_counter() - started)
        return report

    @staticmethod
    def _rewind(records: Sequence[ConsumerRecord[Any, Any]], consumer: BatchConsumer) -> None:
        for tp, offset in first_offsets(records).items():
            # No longer assigned: its new owner starts from the committed offset.
            if tp in consumer.assignment():
                consumer.seek(tp, offset)
