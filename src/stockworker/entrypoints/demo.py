"""`stockworker demo`: feed a short stream of commands to a running worker, print its events."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stockworker.config import Settings
from stockworker.service.topics import Topics


def demo_commands(run: str) -> list[dict[str, Any]]:
    """A receive-pick-ship story with a low-stock crossing, a rejection, a duplicate and junk."""
    now = datetime.now(UTC).isoformat()
    sku, loc = f"DEMO-{run}", "WH-1"

    def cmd(type_: str, **fields: Any) -> dict[str, Any]:
        base = {"command_id": str(uuid.uuid4()), "occurred_at": now, "sku": sku, "location": loc}
        return {"type": type_, **base, **fields}

    receive = cmd("ReceivePOItem", po_number=f"PO-{sku}-1", po_line=1, quantity=20, unit_cost=4.5)
    return [
        cmd(
            "ConfigureStockItem",
            min_quantity=5,
            max_quantity=40,
            low_stock_threshold=8,
            reorder_quantity=10,
            bin="A-01-03",
        ),
        receive,
        cmd("PickStock", quantity=9, order_ref="SO-1"),
        cmd("PickStock", quantity=5, order_ref="SO-2"),  # available 20 -> 6: LowStock
        cmd("PickStock", quantity=50, order_ref="SO-3"),  # rejected: only 6 available
        cmd("ShipStock", quantity=9, order_ref="SO-1"),
        cmd("ShipStock", quantity=1, order_ref="SO-9"),  # rejected: nothing picked for SO-9
        receive,  # a duplicate: applied once, same result again
        cmd("AdjustInventory", delta=-1, reason="DAMAGE"),
        cmd("ReceivePOItem", po_number=f"PO-{sku}-2", po_line=1, quantity=12, unit_cost=4.4),
    ]


def _describe(topic: str, value: bytes, headers: dict[str, bytes]) -> str:
    if "dlq.error.code" in headers:
        return f"{topic:<28} DeadLetter  {headers['dlq.error.code'].decode()}: {value[:40]!r}"
    event = json.loads(value)
    kind = event["type"]
    if kind == "StockChanged":
        q = event["quantities"]
        return (
            f"{topic:<28} {kind:<16} v{event['version']} {event['cause']['command_type']:<18} "
            f"on_hand={q['on_hand']} picked={q['picked']} available={q['available']}"
        )
    if kind in ("LowStock", "StockReplenished"):
        extra = f" suggest={event['suggested_order_quantity']}" if kind == "LowStock" else ""
        levels = f"available={event['available']} threshold={event['threshold']}"
        return f"{topic:<28} {kind:<16} {levels}{extra}"
    if kind == "CommandRejected":
        why = f"{event['reason_code']}: {event['message']}"
        return f"{topic:<28} {kind:<16} {event['command_type']:<18} {why}"
    return f"{topic:<28} {kind:<16} {event['command_type']:<18} -> v{event['version']}"


@dataclass
class _Seen:
    """What the demo read back: lines per topic (with their order), counts."""

    lines: dict[str, list[tuple[int, str]]]
    results: int = 0
    dead: int = 0


async def _publish(
    producer: AIOKafkaProducer, topics: Topics, commands: list[dict[str, Any]], sku: str
) -> None:
    """The commands in order, with one that is not JSON after the fifth."""
    print(f"publishing {len(commands) + 1} commands for {sku} to {topics.commands}")
    bodies = [json.dumps(body).encode() for body in commands]
    for value in [*bodies[:5], b"{this is not json", *bodies[5:]]:
        await producer.send_and_wait(topics.commands, value, key=sku.encode())


async def _collect(
    consumer: AIOKafkaConsumer,
    settings: Settings,
    commands: list[dict[str, Any]],
    run: str,
    timeout_seconds: float,
) -> _Seen:
    topics = Topics(settings.topic_prefix)
    sku = commands[0]["sku"]
    # Results are keyed by command_id and so arrive from many partitions: they are
    # printed in the order their commands were sent.
    sent_order: dict[str, int] = {}
    for i, body in enumerate(commands):
        sent_order.setdefault(body["command_id"], i)
    seen = _Seen(lines={t: [] for t in topics.all()})
    deadline = time.monotonic() + timeout_seconds
    while (seen.results < len(commands) or seen.dead < 1) and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for r in (r for records in batches.values() for r in records):
            text = (r.value or b"").decode("utf-8", "replace")
            if r.key != sku.encode() and run not in text:
                continue
            name = r.topic.removeprefix(settings.topic_prefix)
            order = len(seen.lines[r.topic])
            if r.topic == topics.results:
                order = sent_order.get(json.loads(r.value)["command_id"], order)
            seen.lines[r.topic].append((order, _describe(name, r.value, dict(r.headers))))
            seen.results += r.topic == topics.results
            seen.dead += r.topic == topics.dead_letters
    return seen


async def run_demo(settings: Settings, timeout_seconds: float = 60.0) -> int:
    topics = Topics(settings.topic_prefix)
    run = uuid.uuid4().hex[:6].upper()
    commands = demo_commands(run)
    consumer = AIOKafkaConsumer(
        topics.changed,
        topics.low_stock,
        topics.results,
        topics.dead_letters,
        **settings.kafka().client_options(),
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(**settings.kafka().client_options())
    await consumer.start()
    await producer.start()
    try:
        # Wait for the assignment, so that "latest" is taken before we publish.
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        for tp in consumer.assignment():
            await consumer.position(tp)
        await _publish(producer, topics, commands, commands[0]["sku"])
        seen = await _collect(consumer, settings, commands, run, timeout_seconds)
        for topic_lines in seen.lines.values():
            for _, line in sorted(topic_lines, key=lambda pair: pair[0]):
                print(line)
        if seen.results < len(commands) or seen.dead < 1:
            print(
                f"timed out: {seen.results}/{len(commands)} results, {seen.dead}/1 dead "
                "letters (is the worker running?)"
            )
            return 1
        return 0
    finally:
        await producer.stop()
        await consumer.stop()
