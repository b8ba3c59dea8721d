"""Fault 2: crashes injected at the two exact points where exactly-once could break."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.faults.harness import apply_setup, feed, verify, wait_for_results
from tests.support.kafka_io import EventCollector
from tests.support.reference import ReferenceModel
from tests.support.services import Services
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess, wait_for

pytestmark = pytest.mark.faults


@pytest.mark.parametrize(
    ("point", "fault"),
    [
        # The batch's transaction committed; its offsets did not: the batch is redelivered.
        ("after-db-commit:4", "crash after DB commit, before offset commit"),
        # The broker has the events; the outbox rows are not deleted: they go out again.
        ("relay-after-publish:3", "crash after relay publish, before delete"),
    ],
    ids=["after-db-commit", "relay-after-publish"],
)
async def test_a_crash_at_the_seam_keeps_effects_once_and_events_stable(
    services: Services,
    topics: Topics,
    database_url: str,
    tmp_path: Path,
    point: str,
    fault: str,
) -> None:
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=7, count=3000, skus=[f"C-{i:03d}" for i in range(80)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    worker = WorkerProcess(
        database_url,
        services.kafka_bootstrap_servers,
        topics,
        tmp_path,
        batch_size="100",
        relay_batch_size="200",
        crash_at=point,
    )
    faults: Counter[str] = Counter()
    started = time.monotonic()
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            feeder = asyncio.create_task(feed(services.kafka_bootstrap_servers, topics, bodies))
            assert await asyncio.to_thread(wait_for, lambda: not worker.alive(), 120)
            assert worker.process is not None and worker.process.returncode == 70
            assert f"crash point {point.split(':')[0]} reached" in worker.logs()
            faults[fault] += 1
            del worker.env["STOCKWORKER_CRASH_AT"]
            worker.start()
            await feeder
            await wait_for_results(events, setup + bodies, 300)
    finally:
        worker.stop()
    summary = await verify(
        point.split(":")[0],
        topics,
        events,
        database_url,
        setup + bodies,
        reference,
        faults,
        started,
    )
    summary.assert_clean()
    # The seam was really crossed: something was sent again, with the same ids.
    assert summary.repeats_same_id > 0
