"""Fault 1: the worker SIGKILLed at random moments while a long mixed stream flows."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.faults.harness import apply_setup, feed, profile, verify, wait_for_results
from tests.support.kafka_io import EventCollector
from tests.support.reference import ReferenceModel
from tests.support.services import Services
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.faults


async def test_sigkill_at_random_points_loses_and_doubles_nothing(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    rng = random.Random(4242)
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=99, count=p.kill_commands, skus=[f"K-{i:04d}" for i in range(p.skus)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    worker = WorkerProcess(
        database_url, services.kafka_bootstrap_servers, topics, tmp_path, batch_size="200"
    )
    faults: Counter[str] = Counter()
    started = time.monotonic()
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            feeder = asyncio.create_task(feed(services.kafka_bootstrap_servers, topics, bodies))
            # Kill at moments spread over the stream: after a random share of the results.
            marks = sorted(rng.sample(range(len(bodies) // 20, len(bodies)), p.kills))
            for mark in marks:

                def reached(c: EventCollector, m: int = mark) -> bool:
                    return len(c.on(topics.results)) >= m

                await events.until(reached, 300)
                await asyncio.sleep(rng.uniform(0, 0.3))  # not always right after a poll
                worker.kill()
                faults["SIGKILL"] += 1
                worker.start()
            await feeder
            await wait_for_results(events, setup + bodies, 600)
    finally:
        worker.stop()
    summary = await verify(
        "sigkill", topics, events, database_url, setup + bodies, reference, faults, started
    )
    assert faults["SIGKILL"] == p.kills
    summary.assert_clean()
    assert summary.dead_letters == {}
