"""`stockworker demo`: feed a short stream of commands to a running worker, print its events.

The commands go through the typed client (`stockworker.client.StockClient`), which also
awaits their results; one record that is not JSON, which no typed client would send, is
published by hand in the middle of the stream to show it dead-lettered without holding
back the commands behind it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stockworker.client import Result, StockClient, new_command_id
from stockworker.config import Settings
from stockworker.contract.codes import AdjustmentReason
from stockworker.contract.commands import (
    AdjustInventory,
    AnyCommand,
    ConfigureStockItem,
    PickStock,
    ReceivePOItem,
    ShipStock,
)
from stockworker.contract.events import CommandAccepted
from stockworker.service.topics import Topics

JUNK = b"{this is not json"
JUNK_AFTER = 5  # the junk record follows the fifth command


def demo_sku(run: str) -> str:
    return f"DEMO-{run}"


def demo_commands(run: str) -> list[AnyCommand]:
    """A receive-pick-ship story with a low-stock crossing, a rejection, a duplicate."""
    now = datetime.now(UTC)
    sku, loc = demo_sku(run), "WH-1"

    def position() -> dict[str, object]:
        return {"command_id": new_command_id(), "occurred_at": now, "sku": sku, "location": loc}

    receive = ReceivePOItem(
        **position(), po_number=f"PO-{sku}-1", po_line=1, quantity=20, unit_cost=Decimal("4.5")
    )
    return [
        ConfigureStockItem(
            **position(),
            min_quantity=5,
            max_quantity=40,
            low_stock_threshold=8,
            reorder_quantity=10,
            bin="A-01-03",
        ),
        receive,
        PickStock(**position(), quantity=9, order_ref="SO-1"),
        PickStock(**position(), quantity=5, order_ref="SO-2"),  # available 20 -> 6: LowStock
        PickStock(**position(), quantity=50, order_ref="SO-3"),  # rejected: only 6 available
        ShipStock(**position(), quantity=9, order_ref="SO-1"),
        ShipStock(**position(), quantity=1, order_ref="SO-9"),  # rejected: nothing picked
        receive,  # a duplicate: applied once, same result again
        AdjustInventory(**position(), delta=-1, reason=AdjustmentReason.DAMAGE),
        ReceivePOItem(
            **position(),
            po_number=f"PO-{sku}-2",
            po_line=1,
            quantity=12,
            unit_cost=Decimal("4.4"),
        ),
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
    levels = f"available={event['available']} threshold={event['threshold']}"
    extra = f" suggest={event['suggested_order_quantity']}" if kind == "LowStock" else ""
    return f"{topic:<28} {kind:<16} {levels}{extra}"


def describe_result(topic: str, result: Result) -> str:
    """A result as the demo prints it (what StockClient returned for the command)."""
    if isinstance(result, CommandAccepted):
        return f"{topic:<28} {result.type:<16} {result.command_type:<18} -> v{result.version}"
    why = f"{result.reason_code.value}: {result.message}"
    return f"{topic:<28} {result.type:<16} {result.command_type:<18} {why}"


@dataclass
class _Seen:
    """Events the demo read back, per topic in the order they arrived."""

    lines: dict[str, list[str]]
    last_version: int = 0
    dead: int = 0
    results: list[Result] = field(default_factory=list)

    def complete(self) -> bool:
        """Every result, the dead letter and the StockChanged of the last result's
        version (one SKU: one partition, so every earlier one came before it)."""
        versions = [r.version or 0 for r in self.results if isinstance(r, CommandAccepted)]
        return self.dead >= 1 and self.last_version >= max(versions, default=0)


async def _collect(
    consumer: AIOKafkaConsumer, settings: Settings, sku: str, seen: _Seen, deadline: float
) -> None:
    """Read the event topics until `seen` is complete (or the deadline), then once more
    briefly for a LowStock fetched after the last StockChanged."""
    topics = Topics(settings.topic_prefix)
    last_round = False
    while time.monotonic() < deadline:
        last_round = last_round or seen.complete()
        batches = await consumer.getmany(timeout_ms=200 if last_round else 500)
        for r in (r for records in batches.values() for r in records):
            if r.key != sku.encode():
                continue
            name = r.topic.removeprefix(settings.topic_prefix)
            seen.lines[r.topic].append(_describe(name, r.value, dict(r.headers)))
            if r.topic == topics.dead_letters:
                seen.dead += 1
            elif r.topic == topics.changed:
                seen.last_version = max(seen.last_version, json.loads(r.value)["version"])
        if last_round:
            return


async def run_demo(settings: Settings, timeout_seconds: float = 60.0) -> int:
    topics = Topics(settings.topic_prefix)
    run = uuid.uuid4().hex[:6].upper()
    sku = demo_sku(run)
    commands = demo_commands(run)
    kafka = settings.kafka()
    consumer = AIOKafkaConsumer(
        topics.changed,
        topics.low_stock,
        topics.dead_letters,
        **kafka.client_options(),
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    junk_producer = AIOKafkaProducer(**kafka.client_options())
    seen = _Seen(lines={t: [] for t in (topics.changed, topics.low_stock, topics.dead_letters)})
    deadline = time.monotonic() + timeout_seconds
    timed_out = ""
    await consumer.start()
    try:
        await junk_producer.start()
        # Wait for the assignment, so that "latest" is taken before we publish.
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        for tp in consumer.assignment():
            await consumer.position(tp)
        print(f"publishing {len(commands) + 1} commands for {sku} to {topics.commands}")
        async with StockClient(kafka, settings.topic_prefix) as client:
            try:
                for part in (commands[:JUNK_AFTER], None, commands[JUNK_AFTER:]):
                    if part is None:
                        await junk_producer.send_and_wait(topics.commands, JUNK, key=sku.encode())
                        continue
                    left = round(max(deadline - time.monotonic(), 0.1), 1)
                    seen.results += await client.send_and_wait_many(part, timeout=left)
            except TimeoutError as exc:
                timed_out = str(exc)
        if not timed_out:
            await _collect(consumer, settings, sku, seen, deadline)
    finally:
        await junk_producer.stop()
        await consumer.stop()
    name = topics.results.removeprefix(settings.topic_prefix)
    for topic in topics.all():  # the topics in the contract's order
        if topic == topics.results:
            for result in seen.results:
                print(describe_result(name, result))
        for line in seen.lines.get(topic, []):
            print(line)
    if timed_out or not seen.complete():
        print(
            f"timed out: {len(seen.results)}/{len(commands)} results, {seen.dead}/1 dead "
            f"letters, StockChanged up to v{seen.last_version} "
            f"({timed_out or 'is the worker running?'})"
        )
        return 1
    return 0
