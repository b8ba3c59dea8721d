"""Offset commits in the background: in order, one at a time, merged while one travels,
never raising into the consumer, and drained before the consumer stops."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from stockworker.adapters.kafka.background_commits import BackgroundCommits, Offsets

P0, P1, P2 = (TopicPartition("cmds", p) for p in range(3))


class Coordinator:
    """Answers each commit when the test lets it (`answer`), or refuses it."""

    def __init__(self) -> None:
        self.received: list[Offsets] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()
        self.refuse: Exception | None = None

    async def commit(self, offsets: Offsets) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.refuse is not None:
                raise self.refuse
            self.received.append(offsets)
        finally:
            self.in_flight -= 1


async def test_commits_go_in_order_one_at_a_time_and_merge_while_one_travels() -> None:
    coordinator = Coordinator()
    commits = BackgroundCommits(coordinator.commit, lambda: {P0, P1})
    commits.add({P0: 5})
    await asyncio.sleep(0)  # the first is in flight, waiting for its answer
    commits.add({P0: 9, P1: 3})
    commits.add({P1: 7})
    coordinator.gate.set()
    await commits.drain(1)
    assert coordinator.received == [{P0: 5}, {P0: 9, P1: 7}]
    assert coordinator.most_in_flight == 1


async def test_offsets_of_partitions_no_longer_assigned_are_left_to_their_new_owner() -> None:
    coordinator = Coordinator()
    coordinator.gate.set()
    commits = BackgroundCommits(coordinator.commit, lambda: {P0})
    commits.add({P0: 4, P2: 8})
    commits.add({P2: 9})
    await commits.drain(1)
    assert coordinator.received == [{P0: 4}]


async def test_a_refused_commit_is_logged_and_later_ones_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coordinator = Coordinator()
    coordinator.gate.set()
    coordinator.refuse = CommitFailedError("rebalanced")
    commits = BackgroundCommits(coordinator.commit, lambda: {P0})
    commits.add({P0: 4})
    await commits.drain(1)
    assert "records will be redelivered" in caplog.text
    coordinator.refuse = None
    commits.add({P0: 6})
    await commits.drain(1)
    assert coordinator.received == [{P0: 6}]


async def test_drain_gives_up_after_its_timeout_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coordinator = Coordinator()  # never answers
    commits = BackgroundCommits(coordinator.commit, lambda: {P0})
    commits.add({P0: 4})
    await commits.drain(0.05)
    assert "still pending" in caplog.text
    coordinator.gate.set()
    await commits.drain(1)
    assert coordinator.received == [{P0: 4}]
