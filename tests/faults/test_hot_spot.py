"""Fault 8: a hot spot. Thousands of commands for one position, spread over every
partition, applied by several worker processes at once: no committed state breaks an
invariant, and the accepted commands replayed in version order give the same position."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.service.topics import Topics
from tests.faults.harness import profile, verify, wait_for_results
from tests.support.builders import command, encode
from tests.support.kafka_io import EventCollector, publish
from tests.support.reference import ReferenceModel, observed
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess, wait_for

pytestmark = pytest.mark.faults

SKU, LOCATION = "HOT-1", "WH1"


def hot_commands(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    at = {"sku": SKU, "location": LOCATION}
    bodies = []
    for n in range(count):
        roll = rng.random()
        order = f"SO-{rng.randrange(8)}"
        if roll < 0.15:
            body = command(
                "ReceivePOItem", **at, po_number=f"HOT-PO-{n}", quantity=rng.randint(1, 12)
            )
        elif roll < 0.40:
            body = command("ReserveStock", **at, reservation_id=f"HR-{rng.randrange(60)}",
                           order_ref=order, quantity=rng.randint(1, 4),
                           allow_backorder=rng.random() < 0.3)  # fmt: skip
        elif roll < 0.52:
            body = command("ReleaseReservation", **at, reservation_id=f"HR-{rng.randrange(60)}")
        elif roll < 0.70:
            body = command("PickStock", **at, order_ref=order, quantity=rng.randint(1, 4))
        elif roll < 0.78:
            body = command("UnpickStock", **at, order_ref=order, quantity=rng.randint(1, 3))
        elif roll < 0.92:
            body = command("ShipStock", **at, order_ref=order, quantity=rng.randint(1, 3))
        else:
            body = command("AdjustInventory", **at, delta=rng.choice([-2, -1, 1, 3]),
                           reason="CORRECTION")  # fmt: skip
        bodies.append(body)
    return bodies


def invariant_problems(q: dict[str, int]) -> list[str]:
    problems = [f"{k} < 0" for k, v in q.items() if v < 0]
    if q["on_hand"] < q["reserved"] + q["picked"]:
        problems.append("on_hand < reserved + picked")
    if q["back_ordered"] and q["available"]:
        problems.append("back orders wait while stock is available")
    return problems


async def test_thousands_of_concurrent_commands_on_one_position_keep_every_invariant(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    p = profile()
    bodies = hot_commands(p.hot_commands, seed=8)
    group = f"hot-{uuid.uuid4().hex[:6]}"
    workers = []
    for i in range(p.hot_workers):
        (tmp_path / str(i)).mkdir()
        workers.append(
            WorkerProcess(database_url, services.kafka_bootstrap_servers, topics,
                          tmp_path / str(i), group_id=group, batch_size="50")
        )  # fmt: skip
        workers[-1].start()
    started = time.monotonic()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            for w in workers:
                assert await asyncio.to_thread(
                    wait_for, lambda w=w: "assigned to partitions" in w.logs(), 60
                )
            # Keys that are not the SKU: the commands spread over all six partitions.
            await publish(
                services.kafka_bootstrap_servers,
                topics.commands,
                [(f"spread-{i}".encode(), encode(b)) for i, b in enumerate(bodies)],
            )
            await wait_for_results(events, bodies, 300)
    finally:
        for w in workers:
            w.stop()

    changed = sorted((r.json() for r in events.on(topics.changed)), key=lambda e: e["version"])
    broken = {e["version"]: invariant_problems(e["quantities"]) for e in changed}
    assert {v: b for v, b in broken.items() if b} == {}
    versions = [e["version"] for e in changed]
    assert sorted(set(versions)) == list(range(1, max(versions) + 1))

    # Serialisability: the accepted commands, replayed one by one in the order of the
    # versions they produced, are all accepted again and give exactly the stored position.
    results = events.results()
    accepted = sorted(
        (b for b in bodies if results[b["command_id"]]["type"] == "CommandAccepted"),
        key=lambda b: results[b["command_id"]]["version"],
    )
    replay = ReferenceModel()
    assert all(replay.apply(b) for b in accepted)
    conn = await asyncpg.connect(database_url)
    try:
        stored = await all_positions(conn)
    finally:
        await conn.close()
    assert observed(stored) == replay.snapshot()

    summary = await verify(
        "hot-spot", topics, events, database_url, bodies, None,
        Counter({f"{p.hot_workers} workers on one position": 1}), started,
    )  # fmt: skip
    summary.assert_clean()
    for w in workers:
        assert "BatchReport(applied=0, rejected=0," not in w.logs()
    print(f"{len(accepted)} of {len(bodies)} accepted, final version {max(versions)}")
