"""Fault 10: records whose header key is not UTF-8, spread over every partition of a stream.

aiokafka raises while fetching such a record, after it has already moved other
partitions past records it then drops. Nothing may be lost on any partition, every such
record is dead-lettered with its key's bytes, and the log stays quiet.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from stockworker.service.topics import Topics
from tests.faults.harness import apply_setup, profile, verify, wait_for_results
from tests.support.builders import command, encode
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.raw_kafka import Raw, produce_raw
from tests.support.reference import ReferenceModel
from tests.support.services import Services
from tests.support.streams import TRACKED, mixed_stream, setup_stream
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.faults

PARTITIONS = 6


async def test_poison_header_keys_on_every_partition_lose_nothing(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    rng = random.Random(71)
    setup = setup_stream(TRACKED)
    bodies = mixed_stream(
        seed=71, count=p.outage_commands, skus=[f"H-{i:03d}" for i in range(200)], tracked=TRACKED
    )
    reference = ReferenceModel()
    for body in setup + bodies:
        reference.apply(body)
    poison_count = 6 * PARTITIONS if p.name == "full" else 2 * PARTITIONS
    poison_keys: dict[bytes, bytes] = {}  # record key -> the bad header key's bytes
    worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    started = time.monotonic()
    worker.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await apply_setup(services.kafka_bootstrap_servers, topics, events, setup)
            chunk = len(bodies) // poison_count + 1
            for n, start in enumerate(range(0, len(bodies), chunk)):
                await publish(
                    services.kafka_bootstrap_servers,
                    topics.commands,
                    [command_message(b) for b in bodies[start : start + chunk]],
                )
                bad_key = bytes([0xFF, 0xC0 + n % 32]) + rng.randbytes(6)
                record_key = f"poison-{n}".encode()
                poison_keys[record_key] = bad_key
                # A valid command otherwise: the header alone makes it undeliverable.
                value = encode(command("PickStock", sku=f"H-{n:03d}", location="L1"))
                await produce_raw(
                    services.kafka_bootstrap_servers,
                    topics.commands,
                    n % PARTITIONS,
                    [Raw(record_key, value, [(b"type", b"PickStock"), (bad_key, b"v")])],
                )
            await wait_for_results(events, setup + bodies, 300)
            await events.until(lambda c: len(c.on(topics.dead_letters)) >= len(poison_keys), 60)
            await asyncio.sleep(1)
        assert worker.alive(), worker.logs()[-3000:]
    finally:
        assert worker.stop() == 0

    faults = Counter({"records with a non-UTF-8 header key": len(poison_keys)})
    summary = await verify(
        "poison-header-keys", topics, events, database_url, setup + bodies, reference, faults,
        started,
    )  # fmt: skip
    summary.assert_clean()
    assert summary.dead_letters == {"HEADER_KEY_NOT_UTF8": len(poison_keys)}
    for dead in events.on(topics.dead_letters):
        assert dead.key in poison_keys
        assert dead.header("dlq.invalid_header.key_b64") == base64.b64encode(poison_keys[dead.key])
        assert dead.header("dlq.invalid_header.value") == b"v"
        assert dead.header("type") == b"PickStock"
    # Quiet: a line or two per poison record, not a retry loop with tracebacks.
    log_bytes = worker.log_size()
    assert log_bytes < 2_000 * len(poison_keys) + 20_000, log_bytes
    assert "Traceback" not in worker.logs()
