"""Offset commits that do not hold up the next batch.

A commit is a round trip to the group coordinator (~30 ms a batch when awaited, a sixth
of the worker's cycle). The worker's guarantee is only that offsets are committed after
the database transaction that applied their records: so the consumer takes the offsets
once that transaction has committed, and sends them while the next batch is applied.
One commit is in flight at a time, in the order they were asked for; offsets asked for
meanwhile are merged (the latest per partition) and go in the next one. Stopping the
consumer waits for what is pending, so a clean shutdown leaves nothing to redo.

A commit that fails (the partition was revoked in a rebalance, the coordinator moved)
loses nothing: its records are delivered again and the inbox makes them duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Set

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]


class BackgroundCommits:
    def __init__(
        self,
        commit: Callable[[Offsets], Awaitable[None]],
        assignment: Callable[[], Set[TopicPartition]],
    ) -> None:
        self._commit = commit
        self._assignment = assignment
        self._pending: Offsets = {}
        self._sender: asyncio.Task[None] | None = None

    def add(self, offsets: Offsets) -> None:
        """Commit these offsets after every earlier one, without waiting for it."""
        self._pending.update(offsets)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())

    async def _send_pending(self) -> None:
        while self._pending:
            offsets, self._pending = self._pending, {}
            assigned = self._assignment()
            # No longer ours: its new owner starts from the committed offset.
            owned = {tp: o for tp, o in offsets.items() if tp in assigned}
            if not owned:
                continue
            try:
                await self._commit(owned)
            except KafkaError as exc:  # CommitFailedError after a rebalance, among others
                log.warning("offset commit failed (%r); records will be redelivered", exc)
            except Exception:
                log.exception("offset commit failed; records will be redelivered")

    async def drain(self, within_seconds: float) -> None:
        """Wait (at most `within_seconds`) for every commit asked for so far."""
        sender = self._sender
        if sender is None or sender.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sender), within_seconds)
        if not sender.done():
            log.warning("offset commits still pending after %.0f s; redone", within_seconds)
