"""Faults 5 and 6: workers joining and leaving all the time; SIGTERM under load."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.faults.harness import (
    apply_setup,
    feed,
    profile,
    unpublished,
    verify,
    wait_for_results,
)
from tests.support.kafka_io import EventCollector
from tests.support.reference import ReferenceModel
from tests.support.services import Services
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.faults


async def test_three_workers_joining_and_leaving_lose_and_double_nothing(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    rng = random.Random(5)
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=5, count=p.rebalance_commands, skus=[f"B-{i:03d}" for i in range(400)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    group = f"rebalance-{uuid.uuid4().hex[:6]}"
    workers = []
    for i in range(3):
        (tmp_path / str(i)).mkdir()
        workers.append(
            WorkerProcess(database_url, services.kafka_bootstrap_servers, topics,
                          tmp_path / str(i), group_id=group, batch_size="200")
        )  # fmt: skip
    faults: Counter[str] = Counter()
    started = time.monotonic()
    workers[0].start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            # Spread the stream so a dozen or more joins and leaves happen during it.
            chunks = len(bodies) / 500
            duration = max(15 * p.rebalance_seconds, len(bodies) / 1500)
            feeder = asyncio.create_task(
                feed(services.kafka_bootstrap_servers, topics, bodies, pause=duration / chunks)
            )
            wanted = {b["command_id"] for b in bodies}
            while not wanted <= set(events.results()):
                deadline = time.monotonic() + p.rebalance_seconds
                while time.monotonic() < deadline:
                    await events.poll()
                alive = [w for w in workers if w.alive()]
                idle = [w for w in workers if not w.alive()]
                if idle and (len(alive) == 1 or rng.random() < 0.5):
                    rng.choice(idle).start()
                    faults["worker joined"] += 1
                elif len(alive) > 1:
                    assert await asyncio.to_thread(rng.choice(alive).stop) == 0
                    faults["worker left (SIGTERM)"] += 1
                if time.monotonic() - started > 900:
                    raise TimeoutError(f"results: {len(events.results())} of {len(bodies)}")
            await feeder
            await wait_for_results(events, setup + bodies, 300)
    finally:
        for w in workers:
            if w.alive():
                w.stop()
    summary = await verify(
        "rebalances", topics, events, database_url, setup + bodies, reference, faults, started
    )
    summary.assert_clean()
    assert faults["worker joined"] + faults["worker left (SIGTERM)"] >= 8


async def test_sigterm_under_load_finishes_the_batch_and_leaves_nothing_to_redo(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=6, count=p.sigterm_commands, skus=[f"T-{i:03d}" for i in range(300)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    grace = 10.0
    worker = WorkerProcess(
        database_url, services.kafka_bootstrap_servers, topics, tmp_path,
        shutdown_grace_seconds=str(grace),
    )  # fmt: skip
    faults: Counter[str] = Counter()
    started = time.monotonic()
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            await feed(services.kafka_bootstrap_servers, topics, bodies, pause=0)
            await events.until(lambda c: len(c.results()) >= len(bodies) // 3, 120)
            signalled = time.monotonic()
            code = worker.stop(timeout=grace + 5)
            took = time.monotonic() - signalled
            faults["SIGTERM under load"] += 1
            assert code == 0, worker.logs()[-2000:]
            assert took <= grace, took
            # The relay flushed before exit: nothing committed is left unpublished.
            assert await unpublished(database_url) == 0
            first_run = worker.logs()
            worker.start()
            await wait_for_results(events, setup + bodies, 300)
    finally:
        worker.stop()
    # Nothing the first run applied came back to the second: every batch in hand was
    # finished and its offsets committed before the exit.
    second_run = worker.logs()[len(first_run) :]
    totals = re.findall(r"stockworker stopped: BatchReport\((.*?)\)", second_run)
    assert totals and "duplicates=0" in totals[-1], totals
    summary = await verify(
        "sigterm", topics, events, database_url, setup + bodies, reference, faults, started
    )
    summary.assert_clean()
    print(f"SIGTERM to exit: {took:.2f}s (grace {grace:.0f}s)")
