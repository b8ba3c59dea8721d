"""The worker end to end: real Kafka, real PostgreSQL, the worker as its own process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.domain.position import Position
from stockworker.service.topics import Topics
from tests.support.builders import command
from tests.support.kafka_io import EventCollector, command_message, publish
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e


async def send(services: Services, topics: Topics, *bodies: dict[str, Any]) -> None:
    await publish(
        services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in bodies]
    )


def has_results(*bodies: dict[str, Any]) -> Any:
    ids = {b["command_id"] for b in bodies}
    return lambda c: ids <= set(c.results())


async def position(database_url: str, sku: str = "SKU-1") -> Position | None:
    conn = await asyncpg.connect(database_url)
    try:
        found = [p for p in await all_positions(conn) if p.sku == sku]
    finally:
        await conn.close()
    return found[0] if found else None


async def committed_total(services: Services, group: str, expected: int) -> int:
    """The sum of the group's committed offsets, once it reaches `expected` (or 10 s pass)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap_servers)
    await admin.start()
    try:
        total = -1
        for _ in range(100):
            offsets = await admin.list_consumer_group_offsets(group)
            total = sum(meta.offset for meta in offsets.values() if meta.offset > 0)
            if total >= expected:
                break
            await asyncio.sleep(0.1)
        return total
    finally:
        await admin.close()


async def test_each_command_is_applied_and_reported(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    flow = [
        command("ConfigureStockItem", min_quantity=1, max_quantity=50, low_stock_threshold=0),
        command("ReceivePOItem", quantity=20),
        command("PickStock", quantity=8, order_ref="SO-1"),
        command("ShipStock", quantity=5, order_ref="SO-1"),
        command("AdjustInventory", delta=-2, reason="DAMAGE"),
        command("AdjustInventory", delta=..., counted_quantity=14, reason="COUNT"),
    ]
    await send(services, topics, *flow)
    await events.until(has_results(*flow))

    results = events.results()
    assert [results[b["command_id"]]["type"] for b in flow] == ["CommandAccepted"] * 6
    changed = [r.json() for r in events.on(topics.changed)]
    assert [e["version"] for e in changed] == [1, 2, 3, 4, 5, 6]
    assert [e["cause"]["command_type"] for e in changed] == [b["type"] for b in flow]
    assert changed[-1]["quantities"] == {
        "on_hand": 14,
        "reserved": 0,
        "picked": 3,
        "on_order": 0,
        "back_ordered": 0,
        "available": 11,
    }
    assert changed[4]["cause"]["reason"] == "DAMAGE"
    stored = await position(database_url)
    assert stored is not None
    assert (stored.on_hand, stored.picked, stored.version, dict(stored.picks)) == (
        14,
        3,
        6,
        {"SO-1": 3},
    )
    # The group's committed offsets cover exactly the six records (manual commits).
    assert await committed_total(services, worker.env["STOCKWORKER_GROUP_ID"], 6) == 6


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (command("PickStock", quantity=11), "INSUFFICIENT_AVAILABLE"),
        (command("PickStock", quantity=0), "INVALID_COMMAND"),
        (command("ReceivePOItem", quantity=-3), "INVALID_COMMAND"),
        (command("PickStock", sku="NEVER-CONFIGURED"), "UNKNOWN_POSITION"),
        (command("ConfigureStockItem", min_quantity=9, max_quantity=3), "MAX_BELOW_MIN"),
        (command("ShipStock", quantity=3, order_ref="SO-1"), "INSUFFICIENT_PICKED"),
        (command("AdjustInventory", delta=-9, reason="LOSS"), "INSUFFICIENT_ON_HAND"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["type"],
)
async def test_each_rejection_path_gives_command_rejected_and_changes_nothing(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
    bad: dict[str, Any],
    reason: str,
) -> None:
    setup = [
        command("ConfigureStockItem", max_quantity=100),
        command("ReceivePOItem", quantity=10),
        command("PickStock", quantity=2, order_ref="SO-1"),
    ]
    await send(services, topics, *setup)
    await events.until(has_results(*setup))
    before = await position(database_url)

    await send(services, topics, bad)
    await events.until(has_results(bad))

    result = events.results()[bad["command_id"]]
    assert result["type"] == "CommandRejected"
    assert result["reason_code"] == reason
    assert result["message"]
    if reason == "INVALID_COMMAND":
        assert [e["field"] for e in result["field_errors"]] == ["quantity"]
    assert await position(database_url) == before
    assert await position(database_url, "NEVER-CONFIGURED") is None
    assert len(events.on(topics.changed)) == len(setup)


async def test_a_duplicate_command_is_applied_once_and_gets_the_same_result(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    receive = command("ReceivePOItem", quantity=7)
    await send(services, topics, receive, receive)
    await events.until(lambda c: len(c.on(topics.results)) == 2)
    await send(services, topics, receive)
    await events.until(lambda c: len(c.on(topics.results)) == 3)
    await events.settle(1.0)

    results = events.on(topics.results)
    assert len({(r.value, r.headers["event_id"]) for r in results}) == 1
    assert len(events.on(topics.changed)) == 1
    stored = await position(database_url)
    assert stored is not None and (stored.on_hand, stored.version) == (7, 1)


async def test_a_malformed_message_is_dead_lettered_and_the_next_one_still_applies(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
) -> None:
    valid = command("ReceivePOItem", quantity=1)
    garbage = [b"\xff\xfe not utf-8", b"{not json", b'{"type": "Teleport", "command_id": "x"}']
    await publish(
        services.kafka_bootstrap_servers,
        topics.commands,
        [(b"SKU-1", g) for g in garbage] + [command_message(valid)],
        headers=[("trace", b"\x00\xffraw"), ("nothing", None)],
    )
    await events.until(lambda c: len(c.on(topics.dead_letters)) == 3 and has_results(valid)(c))

    dead = events.on(topics.dead_letters)
    assert [d.value for d in dead] == garbage
    assert [d.headers["dlq.error.code"] for d in dead] == [
        b"NOT_UTF8",
        b"NOT_JSON",
        b"INVALID_COMMAND_ID",
    ]
    first = dead[0]
    assert first.headers["trace"] == b"\x00\xffraw"  # original headers kept, bytes as they were
    assert first.headers["nothing"] is None
    assert first.headers["dlq.source.topic"] == topics.commands.encode()
    offsets = {int(d.header("dlq.source.offset")) for d in dead}
    assert len(offsets) == 3
    assert {d.headers["dlq.source.partition"] for d in dead} == {
        dead[0].headers["dlq.source.partition"]
    }
    assert events.results()[valid["command_id"]]["type"] == "CommandAccepted"


async def test_low_stock_once_per_crossing_and_replenished_on_recovery(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
) -> None:
    flow = [
        command("ConfigureStockItem", max_quantity=40, low_stock_threshold=10, reorder_quantity=5),
        command("ReceivePOItem", quantity=25),  # available 0 -> 25: replenished
        command("PickStock", quantity=10, order_ref="A"),  # 15
        command("PickStock", quantity=6, order_ref="A"),  # 9: crossing -> LowStock
        command("PickStock", quantity=2, order_ref="A"),  # 7: still low
        command("AdjustInventory", delta=-1, reason="DAMAGE"),  # 6: still low
        command("ReceivePOItem", quantity=3),  # 9: still low
        command("ReceivePOItem", quantity=5),  # 14: back -> StockReplenished
        command("PickStock", quantity=1, order_ref="B"),  # 13: nothing
    ]
    await send(services, topics, *flow)
    await events.until(has_results(*flow))
    await events.settle(1.0)

    low = [r.json() for r in events.on(topics.low_stock)]
    # ConfigureStockItem puts an empty position below its new threshold: that is a crossing too.
    assert [(e["type"], e["version"]) for e in low] == [
        ("LowStock", 1),
        ("StockReplenished", 2),
        ("LowStock", 4),
        ("StockReplenished", 8),
    ]
    crossing = low[2]
    assert (crossing["available"], crossing["threshold"]) == (9, 10)
    assert crossing["suggested_order_quantity"] == 40 - 9
    assert all(r.key == b"SKU-1" for r in events.on(topics.low_stock))
    assert json.loads(events.on(topics.changed)[-1].value)["quantities"]["available"] == 13
