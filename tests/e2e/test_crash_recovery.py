"""SIGKILL the worker in the middle of a stream, restart it, and check nothing was lost
or applied twice, against a reference model computed here."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.service.topics import Topics
from tests.support.kafka_io import EventCollector, apply_commands, command_message, publish
from tests.support.reference import ReferenceModel, observed
from tests.support.services import Services
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess, wait_for

pytestmark = pytest.mark.e2e

COMMANDS = 6000
SKUS = [f"CRASH-{i:03d}" for i in range(60)]


def stream(seed: int) -> list[dict[str, Any]]:
    return mixed_stream(seed, COMMANDS, SKUS, tracked=TRACKED)


async def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    bodies = stream(seed=20261123)
    setup = setup_stream(TRACKED)
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)

    worker = WorkerProcess(
        database_url, services.kafka_bootstrap_servers, topics, tmp_path, batch_size="200"
    )
    worker.start()
    kills = 0
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_commands(services.kafka_bootstrap_servers, topics, events, setup)

            async def feed() -> None:
                for start in range(0, COMMANDS, 300):
                    chunk = bodies[start : start + 300]
                    await publish(
                        services.kafka_bootstrap_servers,
                        topics.commands,
                        [command_message(b) for b in chunk],
                    )
                    await asyncio.sleep(0.15)

            feeder = asyncio.create_task(feed())
            for threshold in (800, 2500):

                def reached(c: EventCollector, t: int = threshold) -> bool:
                    return len(c.on(topics.results)) >= t

                await events.until(reached, 120)
                worker.kill()  # SIGKILL while commands are still flowing
                kills += 1
                worker.start()
            await feeder
            wanted = {b["command_id"] for b in bodies}
            await events.until(lambda c: wanted <= set(c.results()), 180)
            await events.settle(2.0)
    finally:
        worker.stop()

    assert kills == 2
    # Every command has a result, and it is the reference model's verdict.
    results = events.results()
    verdicts = {cid: r["type"] == "CommandAccepted" for cid, r in results.items()}
    assert verdicts == reference.outcomes

    # Final positions equal the reference model.
    conn = await asyncpg.connect(database_url)
    try:
        stored = await all_positions(conn)
        unpublished = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    finally:
        await conn.close()
    assert observed(stored) == reference.snapshot()
    assert unpublished == 0

    # One StockChanged per position version: none lost; a repeat carries the same event_id.
    by_version: dict[tuple[str, str, int], set[tuple[bytes, bytes]]] = defaultdict(set)
    for r in events.on(topics.changed):
        e = r.json()
        by_version[(e["sku"], e["location"], e["version"])].add((r.header("event_id"), r.value))
    expected_versions = {
        (sku, loc, v)
        for (sku, loc), p in reference.positions.items()
        for v in range(1, p.version + 1)
    }
    assert set(by_version) == expected_versions
    assert all(len(copies) == 1 for copies in by_version.values())
    duplicates = len(events.on(topics.changed)) - len(by_version)
    print(
        f"{COMMANDS} commands, {kills} kills, {len(by_version)} StockChanged versions, "
        f"{duplicates} re-published copies (same event_id)"
    )


async def test_two_workers_share_the_partitions_and_agree_with_the_reference(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    """Two processes in one group: a rebalance when the second joins, then shared work."""
    bodies = stream(seed=7)[:3000]
    setup = setup_stream(TRACKED)
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    group = f"shared-{uuid.uuid4().hex[:6]}"
    workers = [
        WorkerProcess(
            database_url,
            services.kafka_bootstrap_servers,
            topics,
            tmp_path / str(i),
            group_id=group,
            batch_size="100",
        )
        for i in range(2)
    ]
    for w in workers:
        w.log_dir.mkdir()
    workers[0].start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_commands(services.kafka_bootstrap_servers, topics, events, setup)
            await publish(
                services.kafka_bootstrap_servers,
                topics.commands,
                [command_message(b) for b in bodies[:1500]],
            )
            await events.until(lambda c: len(c.on(topics.results)) >= 300, 60)
            workers[1].start()  # joins mid-stream: partitions move between processes
            assert await asyncio.to_thread(
                wait_for, lambda: "assigned to partitions" in workers[1].logs(), 60
            )
            await publish(
                services.kafka_bootstrap_servers,
                topics.commands,
                [command_message(b) for b in bodies[1500:]],
            )
            wanted = {b["command_id"] for b in bodies}
            await events.until(lambda c: wanted <= set(c.results()), 120)
    finally:
        for w in workers:
            w.stop()

    verdicts = {cid: r["type"] == "CommandAccepted" for cid, r in events.results().items()}
    assert verdicts == reference.outcomes
    conn = await asyncpg.connect(database_url)
    try:
        stored = await all_positions(conn)
    finally:
        await conn.close()
    assert observed(stored) == reference.snapshot()
    assert all(w.process is not None and w.process.returncode == 0 for w in workers)
    # Both did part of the work (each logs its totals when it stops).
    for w in workers:
        assert "stockworker stopped: BatchReport(applied=0," not in w.logs()
        assert "stockworker stopped" in w.logs()
