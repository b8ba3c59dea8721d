"""A Kafka consumer that never lets a record slip by unseen.

aiokafka's `getmany` drains partition after partition and moves each one's position as
it goes. When a record cannot be read (a header key that is not UTF-8 makes it raise
while fetching), the records it already drained from other partitions are dropped with
the exception, their positions stay moved, and the next commit would skip them; the
partition holding the record stays stuck on it. `GuardedConsumer` closes both holes:

- when a fetch fails, whatever it raised, every partition goes back to where it stood
  when the fetch began (a partition that had no position yet goes back to its
  committed offset before it is read again);
- between fetches it checks that no partition moved forward on its own, and puts one
  that did back: defence in depth against anything else losing records. A jump that
  comes back after such a rewind is real (records deleted by retention) and accepted.
  Transaction markers and compaction never trigger it: aiokafka moves positions past
  them while fetching, and only moves made outside a fetch are checked;
- a record aiokafka cannot read is read from the broker byte for byte
  (`record_batches`) and handed out after the records before it, its header keys
  surrogate-escaped, so that the worker dead-letters it and goes on.

It also commits offsets in the background (`background_commits`), and waits for them
when stopped; and, given `top_up_ms`, tops a batch up with what reached the broker
while the last one was being applied (`_top_up`).

Whatever else a fetch raises leaves as a KafkaError: FastStream's consume loop retries
those and would stop on anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalStateError,
    KafkaError,
)

from stockworker.adapters.kafka.background_commits import BackgroundCommits, Offsets
from stockworker.adapters.kafka.raw_fetch import consumer_record, read_up_to_unreadable

log = logging.getLogger(__name__)

# What aiokafka raises for a record it cannot read: the C extension lets the
# UnicodeDecodeError of a header key through, the pure-Python reader wraps it.
UNREADABLE_RECORD_ERRORS = (UnicodeDecodeError, CorruptRecordException)
_RAW_FETCH_TIMEOUT_SECONDS = 30.0
_MAX_BACKOFF_SECONDS = 5.0
_COMMIT_DRAIN_SECONDS = 10.0
# How much longer than its own timeout a top-up's read may take before it is cut off.
_TOP_UP_MARGIN_SECONDS = 0.05

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


class FetchFailed(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """A fetch failed for a reason aiokafka does not report as a KafkaError."""


class GuardedConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, *topics: str, top_up_ms: int = 0, **options: Any) -> None:
        if options.get("isolation_level", "read_uncommitted") != "read_uncommitted":
            # The raw reader skips transaction markers but not aborted transactions.
            raise ValueError("GuardedConsumer reads uncommitted records only")
        super().__init__(*topics, **options)
        # Per partition: every record before this position has been handed out.
        self._handed_out_to: dict[TopicPartition, int] = {}
        self._assignment_seen: object | None = None
        # A rewind not yet confirmed: partition -> (where it should be, where it was).
        self._rewound: dict[TopicPartition, tuple[int, int]] = {}
        # Paused after a failed fetch until their committed offset is known again.
        self._to_restart: set[TopicPartition] = set()
        self._failures = 0
        self._commits = BackgroundCommits(self.commit, self.assignment)
        self._top_up_ms = top_up_ms

    def commit_in_background(self, offsets: Offsets) -> None:
        """Commit after every earlier commit, while the caller goes on (background_commits)."""
        self._commits.add(offsets)

    async def stop(self) -> None:
        try:
            await self._commits.drain(_COMMIT_DRAIN_SECONDS)
        finally:
            await super().stop()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        super().seek(partition, offset)
        self._handed_out_to[partition] = offset

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Batch:
        self._check_positions()
        await self._restart_paused()
        start, started_under = self._positions_now(), self._assignment()
        try:
            batch: Batch = await super().getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
            batch = await self._top_up(batch, partitions, timeout_ms, max_records)
        except UNREADABLE_RECORD_ERRORS as exc:
            self._rewind_to(start, started_under)
            return await self._get_past_unreadable(exc, partitions, max_records)
        except (KafkaError, ConsumerStoppedError):
            self._rewind_to(start, started_under)
            raise
        except Exception as exc:
            self._rewind_to(start, started_under)
            raise FetchFailed(f"fetching commands failed: {exc!r}") from exc
        except BaseException:  # cancelled: nothing was handed out
            self._rewind_to(start, started_under)
            raise
        self._failures = 0
        self._note_positions()
        return batch

    async def _top_up(
        self,
        batch: Batch,
        partitions: tuple[TopicPartition, ...],
        timeout_ms: int,
        max_records: int | None,
    ) -> Batch:
        """Add what reached the broker while the last batch was being applied.

        aiokafka fetches a partition again only once its buffered records are taken, so
        the records that arrived during a batch wait at the broker until the next
        `getmany`, and then for the whole batch after it: one to two batches of delay.
        Taking the buffer sends that fetch at once; waiting up to `top_up_ms` for its
        answer puts those records in this batch instead. Inside `getmany`'s guarded
        section: if this read fails, both reads are rewound together.
        """
        taken = sum(map(len, batch.values()))
        if (
            not taken
            or not self._top_up_ms
            or not timeout_ms  # the caller wants no wait
            or (max_records is not None and taken >= max_records)
            or self._subscription.reassignment_in_progress
        ):
            return batch
        assignment = self._assignment()
        more: Batch = {}
        # Bounded here too: aiokafka's read would wait for a rebalance without limit. It
        # is cancelled only while it waits, with nothing taken.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._top_up_ms / 1000 + _TOP_UP_MARGIN_SECONDS):
                more = await super().getmany(
                    *partitions,
                    timeout_ms=self._top_up_ms,
                    max_records=None if max_records is None else max_records - taken,
                )
        if self._closed:
            # Stopped meanwhile: its last offsets are committed already; hand nothing
            # out (the rewind puts the partitions back).
            raise ConsumerStoppedError()
        if self._assignment() is not assignment:
            # A rebalance came in between. What the first read took may be another
            # worker's now: dropped (the new assignment starts from the committed
            # offsets). What the second took is the new assignment's, read from there,
            # and its positions have moved past it: handed out.
            return more
        for tp, records in more.items():
            batch.setdefault(tp, []).extend(records)
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

    def _positions_now(self) -> dict[TopicPartition, int | None]:
        assignment = self._assignment()
        tps: Iterable[TopicPartition] = () if assignment is None else assignment.tps
        return {tp: self._position_now(tp) for tp in tps}

    def _check_positions(self) -> None:
        """Between fetches nothing moves a partition forward but our own seeks."""
        self._adopt(self._assignment())
        for tp, expected in list(self._handed_out_to.items()):
            position = self._position_now(tp)
            if position is None or position <= expected:
                # Backwards (a reset to earliest, a truncation) only reads again: safe.
                self._rewound.pop(tp, None)
                if position is not None:
                    self._handed_out_to[tp] = position
                continue
            if self._rewound.get(tp) == (expected, position):
                log.warning(
                    "partition %s: offsets %d to %d cannot be read any more (deleted by "
                    "retention?); going on from %d",
                    tp,
                    expected,
                    position - 1,
                    position,
                )
                del self._rewound[tp]
                self._handed_out_to[tp] = position
                continue
            log.warning(
                "partition %s moved from %d to %d without handing out those records; "
                "reading them again",
                tp,
                expected,
                position,
            )
            self._rewound[tp] = (expected, position)
            super().seek(tp, expected)

    def _adopt(self, assignment: Any) -> None:
        if assignment is not self._assignment_seen:
            # A new assignment starts every partition at its committed offset: what was
            # noted of the last one says nothing about it.
            self._handed_out_to.clear()
            self._rewound.clear()
            self._to_restart.clear()
            self._assignment_seen = assignment

    def _note_positions(self) -> None:
        assignment = self._assignment()
        if assignment is None:
            return
        self._adopt(assignment)
        for tp in assignment.tps:
            position = self._position_now(tp)
            if position is not None:
                self._handed_out_to[tp] = position

    def _rewind_to(self, start: dict[TopicPartition, int | None], started_under: Any) -> None:
        """After a failed fetch: every partition back where the fetch found it."""
        assignment = self._assignment()
        if assignment is None:
            return
        if assignment is not started_under:
            # A rebalance came in during the fetch: `start` holds the old assignment's
            # positions, which say nothing of the new one. Every partition goes back to
            # its committed offset instead (the pause-and-restart path below).
            start = {}
        for tp in assignment.tps:
            now, before = self._position_now(tp), start.get(tp)
            if now is None or now == before:
                continue
            if before is not None:
                super().seek(tp, before)
                self._handed_out_to[tp] = before
            else:
                # It got its position (or was assigned) during the fetch and may have
                # been read from: read nothing more of it until its committed offset is
                # known again.
                self.pause(tp)
                self._to_restart.add(tp)
        self._assignment_seen = assignment

    async def _restart_paused(self) -> None:
        for tp in list(self._to_restart):
            try:
                committed = await self.committed(tp)
                if committed is None:
                    committed = (await self.beginning_offsets([tp]))[tp]
            except IllegalStateError:  # revoked meanwhile: its new owner starts from the commit
                self._to_restart.discard(tp)
                continue
            except KafkaError as exc:
                log.debug("cannot find where %s restarts yet (%r); it stays paused", tp, exc)
                continue
            self.seek(tp, int(committed))
            self.resume(tp)
            self._to_restart.discard(tp)

    # -- a record aiokafka cannot read ------------------------------------------------

    async def _get_past_unreadable(
        self, exc: BaseException, partitions: tuple[TopicPartition, ...], max_records: int | None
    ) -> Batch:
        self._failures += 1
        try:
            await self._restart_paused()
            batch = await asyncio.wait_for(
                self._read_up_to_unreadable(partitions, max_records), _RAW_FETCH_TIMEOUT_SECONDS
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
        self, partitions: tuple[TopicPartition, ...], max_records: int | None
    ) -> Batch:
        """For a partition holding a record aiokafka cannot read: the records up to it."""
        readable = set(partitions) if partitions else self.assignment() - self.paused()
        positions = {tp: p for tp in readable if (p := self._position_now(tp)) is not None}
        found = await read_up_to_unreadable(
            self._client, positions, self._max_partition_fetch_bytes, max_records
        )
        batch: Batch = {}
        for tp, records in found.items():
            last = records[-1]
            if last.has_undecodable_header_key:
                log.warning(
                    "partition %s offset %d: a header key is not UTF-8; the record is handed "
                    "over as read from the broker",
                    tp,
                    last.offset,
                )
            batch[tp] = [consumer_record(tp, r) for r in records]
            self.seek(tp, last.offset + 1)
        return batch
