"""Bounded memory and bounded tables: over a long stream with short retention, the inbox
and the outbox stay flat, and so does the worker's memory."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from stockworker.service.topics import Topics
from tests.faults.harness import apply_setup, feed, profile, verify, wait_for_results
from tests.support.kafka_io import EventCollector
from tests.support.reference import ReferenceModel
from tests.support.services import Services
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


pytestmark = pytest.mark.faults


async def test_inbox_outbox_and_memory_stay_flat_with_retention(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=12, count=p.outage_commands, skus=[f"R-{i:03d}" for i in range(300)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    # Seconds instead of days, so a few minutes are a "long run"; no faults here, so
    # nothing is redelivered after its inbox row is gone.
    worker = WorkerProcess(
        database_url, services.kafka_bootstrap_servers, topics, tmp_path,
        inbox_retention_hours=str(3 / 3600), outbox_retention_hours=str(3 / 3600),
        retention_interval_seconds="1",
    )  # fmt: skip
    samples: list[tuple[float, int, int, int]] = []
    started = time.monotonic()
    worker.start()
    conn = await asyncpg.connect(database_url)
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            # About 300 commands a second for the whole stream.
            feeder = asyncio.create_task(
                feed(services.kafka_bootstrap_servers, topics, bodies, chunk=150, pause=0.5)
            )
            while not feeder.done():
                await events.poll(500)
                assert worker.process is not None
                samples.append(
                    (
                        time.monotonic() - started,
                        await conn.fetchval("SELECT count(*) FROM processed_command"),
                        await conn.fetchval("SELECT count(*) FROM outbox"),
                        rss_kib(worker.process.pid),
                    )
                )
            await wait_for_results(events, setup + bodies, 300)
    finally:
        await conn.close()
        worker.stop()
    summary = await verify(
        "bounded-resources", topics, events, database_url, setup + bodies, reference,
        Counter({"retention 3 s": 1}), started,
    )  # fmt: skip
    summary.assert_clean()
    half = len(samples) // 2
    early, late = samples[:half], samples[half:]
    inbox_cap = max(s[1] for s in samples)
    outbox_cap = max(s[2] for s in samples)
    print(
        f"{len(bodies)} commands over {samples[-1][0]:.0f}s: inbox at most {inbox_cap} rows, "
        f"outbox at most {outbox_cap} rows; worker RSS {max(s[3] for s in early) // 1024} MiB "
        f"(first half) / {max(s[3] for s in late) // 1024} MiB (second half)"
    )
    # Flat: the tables hold a few seconds' worth, never the whole stream ...
    assert inbox_cap < len(bodies) / 3
    assert outbox_cap < 2 * len(bodies) / 3
    assert max(s[1] for s in late) <= 1.5 * max(s[1] for s in early) + 500
    # ... and the worker's memory does not grow with the stream.
    assert max(s[3] for s in late) <= 1.25 * max(s[3] for s in early)
