"""A consumer group's state on a topic, and committing new offsets for it.

For `stockworker offsets`: the group's state and members with the partitions assigned
to them (the member assignment decoded with aiokafka's ConsumerProtocol), its committed
offsets, the topic's bounds and offsets by time (through `TopicReader`, outside any
group).

aiokafka's admin client cannot alter a group's offsets, so `commit` uses a consumer
with the group's id and a manual assignment: such a consumer never joins the group (no
JoinGroup: it is not a member and triggers no rebalance) and commits with no
generation, which the broker accepts only while the group has no members. A group that
gained members meanwhile answers with an error, raised here as `GroupActive`.

aiokafka retries a commit for as long as the error is retriable (no group coordinator
available, the coordinator moving), with no end: the commit is bounded here by
`COMMIT_TIMEOUT` seconds and then raised as `CommitTimedOut`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.errors import CommitFailedError, for_code
from aiokafka.structs import OffsetAndMetadata

from stockworker.adapters.kafka.topic_reader import (
    PartitionBounds,
    TopicReader,
    UnknownTopicOrPartition,
)
from stockworker.config.kafka import KafkaConnection, as_connection

__all__ = [
    "COMMIT_TIMEOUT",
    "CommitTimedOut",
    "ConsumerGroups",
    "GroupActive",
    "GroupDescription",
    "GroupMember",
    "PartitionBounds",
    "UnknownTopicOrPartition",
]

INACTIVE_STATES = ("Empty", "Dead")
# Seconds a commit may take, retries included (see the module's doc).
COMMIT_TIMEOUT = 30.0


class GroupActive(Exception):
    """The broker refused the commit: the group has members (it rebalanced, or a worker
    started between the check and the commit)."""


class CommitTimedOut(Exception):
    """The commit was not acknowledged in time (no group coordinator answering): it may
    or may not have been stored."""


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str
    assignment: tuple[tuple[str, int], ...]  # (topic, partition), as the leader assigned

    def partitions(self, topic: str) -> list[int]:
        return sorted(p for t, p in self.assignment if t == topic)

    def label(self) -> str:
        return f"{self.client_id}@{self.host} ({self.member_id})"


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str  # Empty, Stable, PreparingRebalance, CompletingRebalance, Dead
    members: tuple[GroupMember, ...]

    @property
    def active(self) -> bool:
        """Whether a reset must wait: the group has members or is rebalancing."""
        return bool(self.members) or self.state not in INACTIVE_STATES

    def owners(self, topic: str) -> dict[int, GroupMember]:
        return {p: m for m in self.members for p in m.partitions(topic)}


def _assignment(raw: bytes) -> tuple[tuple[str, int], ...]:
    if not raw:  # a member whose assignment is not known yet (rebalancing)
        return ()
    decoded = ConsumerProtocol.ASSIGNMENT.decode(raw)
    return tuple((tp.topic, tp.partition) for tp in decoded.partitions())


def _member(raw: tuple[Any, ...]) -> GroupMember:
    # DescribeGroups v0-v3: member_id, client_id, client_host, metadata, assignment;
    # v4 and later add group_instance_id after member_id.
    if len(raw) == 6:
        member_id, _instance, client_id, host, _metadata, assignment = raw
    else:
        member_id, client_id, host, _metadata, assignment = raw
    return GroupMember(
        member_id=member_id,
        client_id=client_id,
        host=host.lstrip("/"),
        assignment=_assignment(assignment),
    )


class ConsumerGroups:
    """`async with ConsumerGroups(kafka) as groups:` then describe, committed, bounds,
    offsets_for_time, commit."""

    def __init__(self, kafka: KafkaConnection | str, commit_timeout: float | None = None) -> None:
        self._kafka = as_connection(kafka)
        self._commit_timeout = COMMIT_TIMEOUT if commit_timeout is None else commit_timeout
        self._admin = AIOKafkaAdminClient(**self._kafka.client_options())
        self._reader = TopicReader(self._kafka)
        self._reading = False  # the reader was entered (and not left)
        self._closed = False

    async def __aenter__(self) -> ConsumerGroups:
        # Whatever fails or is cancelled (a caller's timeout) part way, starting the admin
        # client included, closes what was started: nothing is left connected.
        try:
            await self._admin.start()
            await self._reader.__aenter__()
            self._reading = True
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        """Closes both clients; safe on a half-entered instance and more than once."""
        try:
            if self._reading:
                self._reading = False
                await self._reader.__aexit__()
        finally:
            if not self._closed:
                self._closed = True
                await self._admin.close()

    async def describe(self, group_id: str) -> GroupDescription:
        """State and members (an unknown group is "Dead" with none)."""
        responses = await self._admin.describe_consumer_groups([group_id])
        for response in responses:
            for group in response.groups:
                error_code, name, state, _ptype, _protocol, members = group[:6]
                if name != group_id:
                    continue
                if error_code:
                    raise for_code(error_code)(f"cannot describe group {group_id!r}")
                return GroupDescription(
                    group_id=name, state=state, members=tuple(_member(m) for m in members)
                )
        return GroupDescription(group_id=group_id, state="Dead", members=())

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; UnknownTopicOrPartition when it does not exist."""
        return await self._reader.partitions(topic)

    async def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        """Per partition of the topic: the group's committed offset, None when it has none."""
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        found = await self._admin.list_consumer_group_offsets(group_id, partitions=tps)
        result: dict[int, int | None] = {}
        for tp in tps:
            meta = found.get(tp)
            result[tp.partition] = meta.offset if meta is not None and meta.offset >= 0 else None
        return result

    async def bounds(self, topic: str) -> dict[int, PartitionBounds]:
        return await self._reader.bounds(topic)

    async def offsets_for_time(self, topic: str, moment: datetime) -> dict[int, int | None]:
        """Per partition: the first offset whose timestamp is at or after `moment`, None
        when the partition has no such record."""
        at = await self._reader.offsets_at(topic, moment)
        end = await self._reader.bounds(topic)
        # offsets_at answers the end offset where Kafka found nothing (no record is there).
        return {p: (None if offset >= end[p].end else offset) for p, offset in at.items()}

    @asynccontextmanager
    async def committer(
        self, group_id: str, topic: str
    ) -> AsyncIterator[Callable[[Mapping[int, int]], Awaitable[None]]]:
        """A function that commits offsets for the group without joining it (see the
        module's doc); open while the block runs."""
        consumer = AIOKafkaConsumer(
            **self._kafka.client_options(),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            assigned = [TopicPartition(topic, p) for p in await self.partitions(topic)]
            consumer.assign(assigned)
            consumer.pause(*assigned)  # it commits; it must not fetch

            async def commit(offsets: Mapping[int, int]) -> None:
                if not offsets:
                    return
                timeout = self._commit_timeout
                try:
                    await asyncio.wait_for(
                        consumer.commit(
                            {
                                TopicPartition(topic, p): OffsetAndMetadata(offset, "")
                                for p, offset in offsets.items()
                            }
                        ),
                        timeout,
                    )
                except CommitFailedError as exc:
                    raise GroupActive(
                        f"group {group_id!r} has members: the broker refused the commit"
                    ) from exc
                except TimeoutError:
                    raise CommitTimedOut(
                        f"the commit for group {group_id!r} was not acknowledged within "
                        f"{timeout:g} s (no group coordinator answering?); it may or may not "
                        "have been stored: check with `stockworker offsets show`"
                    ) from None

            yield commit
        finally:
            await consumer.stop()

    async def commit(self, group_id: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit `offsets` (partition -> next offset to read) for an inactive group."""
        async with self.committer(group_id, topic) as commit:
            await commit(offsets)
