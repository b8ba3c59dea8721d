"""Faults 3 and 4: PostgreSQL, then the Kafka broker, stopped under load and started again."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stockworker.service.topics import Topics
from tests.faults.harness import (
    apply_setup,
    feed,
    profile,
    services_script,
    unpublished,
    verify,
    wait_for_results,
)
from tests.support.kafka_io import EventCollector
from tests.support.reference import ReferenceModel
from tests.support.services import Services, worker_dsn
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.faults


def stream(
    seed: int, count: int
) -> tuple[list[dict[str, object]], list[dict[str, object]], ReferenceModel]:
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=seed, count=count, skus=[f"O-{i:03d}" for i in range(300)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    return setup, bodies, reference


async def test_postgres_down_under_load_pauses_retries_and_catches_up(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    setup, bodies, reference = stream(31, p.outage_commands)
    worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    faults: Counter[str] = Counter()
    started = time.monotonic()
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            feeder = asyncio.create_task(feed(services.kafka_bootstrap_servers, topics, bodies))
            await events.until(lambda c: len(c.results()) >= len(bodies) // 4, 120)
            services_script("stop-postgres")
            faults[f"PostgreSQL stopped {p.postgres_outage_seconds:.0f}s"] += 1
            unready: dict[str, Any] | None = None
            try:
                deadline = time.monotonic() + p.postgres_outage_seconds
                while time.monotonic() < deadline:
                    await events.poll()  # keep reading; the worker must stay up meanwhile
                    assert worker.alive(), worker.logs()[-2000:]
                    if unready is None:  # /health/ready answers (in ~2 s) while PG is down
                        status, body = worker.readiness(timeout=5)
                        if status == 503 and not body["checks"]["database"]["ok"]:
                            unready = body
            finally:
                services_script("start-postgres")
            assert unready is not None, "never unready (database) while PostgreSQL was down"
            assert unready["status"] == "unready"
            await feeder
            await wait_for_results(events, setup + bodies, 300)
            ready = worker.wait_ready(60)  # and ready again once it is back
            assert all(check["ok"] for check in ready["checks"].values()), ready
        assert worker.alive()
    finally:
        assert worker.stop() == 0
    summary = await verify(
        "postgres-outage", topics, events, database_url, setup + bodies, reference, faults, started
    )
    summary.assert_clean()
    assert summary.dead_letters == {}  # no valid command was dead-lettered
    retries = worker.logs().count("transient failure applying a batch")
    # Backoff, not a busy loop: capped at 1 s in the tests, so about one retry a second.
    assert 1 <= retries <= 2 * p.postgres_outage_seconds + 10, retries


async def test_kafka_down_under_load_reconnects_and_drains_in_order(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    setup, bodies, reference = stream(47, p.outage_commands)
    worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    faults: Counter[str] = Counter()
    started = time.monotonic()
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            await feed(services.kafka_bootstrap_servers, topics, bodies, pause=0)
            await events.until(lambda c: len(c.results()) >= len(bodies) // 4, 120)
            services_script("stop-kafka")
            faults[f"Kafka stopped {p.kafka_outage_seconds:.0f}s"] += 1
            try:
                await asyncio.sleep(p.kafka_outage_seconds)
                assert worker.alive(), worker.logs()[-2000:]
                backlog = await unpublished(database_url)
            finally:
                services_script("start-kafka")
            await wait_for_results(events, setup + bodies, 600)
        assert worker.alive()
    finally:
        assert worker.stop() == 0
    left = await unpublished(database_url)
    summary = await verify(
        "kafka-outage", topics, events, database_url, setup + bodies, reference, faults, started
    )
    summary.assert_clean()
    print(f"outbox backlog during the outage: {backlog} rows; after: {left}")
    assert left == 0
    # Per-SKU order: each position's versions first appear in increasing order (a
    # re-published run may repeat some, with their ids, but never jumps back).
    first_seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    seen: set[tuple[str, str, int]] = set()
    for r in events.on(topics.changed):
        e = r.json()
        key = (e["sku"], e["location"], e["version"])
        if key not in seen:
            seen.add(key)
            first_seen[key[:2]].append(key[2])
    assert all(v == sorted(v) for v in first_seen.values())


async def test_postgres_connections_terminated_under_load_lose_nothing(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    """A failover or a proxy restart: every connection of the worker (and its relay) is
    cut again and again in the middle of its batches. Retried, never dead-lettered."""
    p = profile()
    setup, bodies, reference = stream(53, p.outage_commands)
    worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    faults: Counter[str] = Counter()
    started = time.monotonic()
    worker.start()
    # As the worker's own role, which may end its own sessions.
    admin = await asyncpg.connect(worker_dsn(database_url))
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            feeder = asyncio.create_task(feed(services.kafka_bootstrap_servers, topics, bodies))
            await events.until(lambda c: len(c.results()) >= len(bodies) // 10, 120)

            async def cut_connections() -> None:
                # Often enough to land inside transactions, the retries' included.
                while True:
                    faults["connections terminated"] += await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND usename = current_user "
                        "AND pid <> pg_backend_pid() AND state <> 'idle'"
                    )
                    await asyncio.sleep(0.02)

            cutter = asyncio.create_task(cut_connections())
            try:
                deadline = time.monotonic() + p.postgres_outage_seconds
                while time.monotonic() < deadline:
                    await events.poll(timeout_ms=200)
                    assert worker.alive(), worker.logs()[-2000:]
            finally:
                cutter.cancel()
            await feeder
            await wait_for_results(events, setup + bodies, 300)
        assert worker.alive()
    finally:
        await admin.close()
        assert worker.stop() == 0
    summary = await verify(
        "connections-terminated", topics, events, database_url, setup + bodies, reference,
        faults, started,
    )  # fmt: skip
    summary.assert_clean()
    assert faults["connections terminated"] > 0
    assert summary.dead_letters == {}  # no valid command was dead-lettered
