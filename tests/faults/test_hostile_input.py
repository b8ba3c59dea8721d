"""Fault 7: poison and hostile input. Each ends as a CommandRejected or a dead letter with a
specific reason, the worker keeps running, and the next valid command on the same
partition is applied within a bounded time. Secrets never reach the logs."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.service.topics import Topics
from tests.faults.harness import verify
from tests.support.builders import command, encode
from tests.support.kafka_io import EventCollector, delete_topics
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.faults

SECRET = "SECRET-ORDER-REF-42"
BOUND_SECONDS = 60


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def valid_with(**fields: Any) -> dict[str, Any]:
    return command("PickStock", **{"sku": "HOSTILE", **fields})


# (name, value, expected): expected is ("dlq", code) or ("rejected", reason_code).
CASES: list[tuple[str, bytes | None, tuple[str, str]]] = [
    ("invalid UTF-8", b"\xff\xfe\xfa{", ("dlq", "NOT_UTF8")),
    ("not JSON", b"{'single': quotes}", ("dlq", "NOT_JSON")),
    ("truncated JSON", encode(valid_with())[:-7], ("dlq", "NOT_JSON")),
    ("JSON array", raw([1, 2, 3]), ("dlq", "NOT_AN_OBJECT")),
    ("JSON string", raw("PickStock"), ("dlq", "NOT_AN_OBJECT")),
    ("JSON null", b"null", ("dlq", "NOT_AN_OBJECT")),
    ("empty value", b"", ("dlq", "EMPTY_MESSAGE")),
    ("tombstone", None, ("dlq", "EMPTY_MESSAGE")),
    ("unknown type", raw({**valid_with(), "type": "Teleport"}), ("dlq", "UNKNOWN_TYPE")),
    ("type not a string", raw({**valid_with(), "type": 7}), ("dlq", "UNKNOWN_TYPE")),
    ("no type", raw({k: v for k, v in valid_with().items() if k != "type"}),
     ("dlq", "MISSING_TYPE")),
    ("no command_id", raw({k: v for k, v in valid_with().items() if k != "command_id"}),
     ("dlq", "MISSING_COMMAND_ID")),
    ("command_id not a UUID", raw({**valid_with(), "command_id": "abc"}),
     ("dlq", "INVALID_COMMAND_ID")),
    ("command_id a number", raw({**valid_with(), "command_id": 42}),
     ("dlq", "INVALID_COMMAND_ID")),
    ("deeply nested", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, ("dlq", "TOO_DEEP")),
    ("several megabytes", raw({**valid_with(), "order_ref": "x" * 3_000_000}),
     ("dlq", "MESSAGE_TOO_LARGE")),
    ("quantity a string", encode(valid_with(quantity="ten")), ("rejected", "INVALID_COMMAND")),
    ("quantity a float", encode(valid_with(quantity=1.5)), ("rejected", "INVALID_COMMAND")),
    ("negative quantity", encode(valid_with(quantity=-5)), ("rejected", "INVALID_COMMAND")),
    ("absurd quantity", encode(valid_with(quantity=10**30)), ("rejected", "INVALID_COMMAND")),
    ("quantity NaN", encode(valid_with()).replace(b'"quantity": 1', b'"quantity": NaN'),
     ("rejected", "INVALID_COMMAND")),
    ("sku past its limit", encode(valid_with(sku="S" * 10_000)), ("rejected", "INVALID_COMMAND")),
    ("order_ref past its limit", encode(valid_with(order_ref="o" * 101)),
     ("rejected", "INVALID_COMMAND")),
    ("NUL in a text field", encode(valid_with(order_ref="A\u0000B")),
     ("rejected", "INVALID_COMMAND")),
    ("unknown field", encode(valid_with(order_ref=SECRET, admin=True)),
     ("rejected", "INVALID_COMMAND")),
    ("no time zone", encode(valid_with(occurred_at="2026-11-23T10:00:00")),
     ("rejected", "INVALID_COMMAND")),
    ("unit_cost with 7 decimals", encode(command("ReceivePOItem", sku="HOSTILE",
                                                 unit_cost="0.0000001")),
     ("rejected", "INVALID_COMMAND")),
    ("secret order, too much", encode(valid_with(order_ref=SECRET, quantity=999)),
     ("rejected", "INSUFFICIENT_AVAILABLE")),
]  # fmt: skip


async def large_record_producer(services: Services) -> AIOKafkaProducer:
    """A producer that sends records of up to 8 MB (the commands topic takes them)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=services.kafka_bootstrap_servers, max_request_size=8_000_000
    )
    await producer.start()
    return producer


async def test_every_hostile_record_gets_a_specific_reason_and_the_partition_moves(
    services: Services, database_url: str, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"hostile-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(
        services.kafka_bootstrap_servers, topics, commands_max_message_bytes=8_000_000
    )
    worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    worker.start()
    stock = command("ReceivePOItem", sku="HOSTILE", po_number="H-0", quantity=1000)
    # After every hostile record, a valid command with the same key (same partition).
    followers = {name: valid_with(order_ref=f"after-{i}") for i, (name, _, _) in enumerate(CASES)}
    started = time.monotonic()
    producer = await large_record_producer(services)
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await producer.send_and_wait(topics.commands, encode(stock), key=b"HOSTILE")
            await events.until(lambda c: stock["command_id"] in c.results(), 60)
            sent_at = time.monotonic()
            for i, (name, value, _) in enumerate(CASES):
                key = f"hostile-{i}".encode()
                await producer.send_and_wait(topics.commands, value, key=key,
                                             headers=[("case", name.encode())])  # fmt: skip
                await producer.send_and_wait(topics.commands, encode(followers[name]), key=key)
            ids = {b["command_id"] for b in followers.values()}
            await events.until(lambda c: ids <= set(c.results()), BOUND_SECONDS)
            await events.settle(2.0)
            applied_within = time.monotonic() - sent_at
            assert worker.alive()
    finally:
        await producer.stop()
        worker.stop()
        await delete_topics(services.kafka_bootstrap_servers, topics)

    results = events.results()
    dead = {r.key: r for r in events.on(topics.dead_letters)}
    outcomes = {}
    for i, (name, value, _) in enumerate(CASES):
        key = f"hostile-{i}".encode()
        if key in dead:
            outcomes[name] = ("dlq", dead[key].header("dlq.error.code").decode())
        else:
            # A rejected command is found by its command_id, from its own bytes.
            assert value is not None
            command_id = json.loads(value)["command_id"]
            result = results.get(command_id, {})
            outcomes[name] = ("rejected", result.get("reason_code", "missing"))
        assert results[followers[name]["command_id"]]["type"] == "CommandAccepted", name
    assert outcomes == {name: expected for name, _, expected in CASES}
    # A dead letter keeps the original bytes (or a 64 KiB excerpt past the size limit).
    for i, (name, value, expected) in enumerate(CASES):
        record = dead.get(f"hostile-{i}".encode())
        if record is not None and expected[1] != "MESSAGE_TOO_LARGE":
            assert record.value == (value or b""), name
    print(f"{len(CASES)} hostile records; the valid commands after them applied within "
          f"{applied_within:.1f}s")  # fmt: skip

    logs = worker.logs()
    assert SECRET not in logs
    assert "app-local-secret" not in logs
    faults = Counter({"hostile records": len(CASES)})
    bodies = [stock, *followers.values()]
    summary = await verify(
        "hostile-input", topics, events, database_url, bodies, None, faults, started
    )
    assert (summary.commands_lost, summary.applied_twice, summary.ledger_differences) == (0, 0, 0)
    assert sum(summary.dead_letters.values()) == sum(1 for *_, e in CASES if e[0] == "dlq")


async def test_a_dead_letter_of_a_record_at_the_limit_with_thousands_of_headers_fits(
    services: Services, database_url: str, tmp_path: Path
) -> None:
    """Its `dlq.*` headers would push the dead letter past what the broker takes: it must
    be trimmed to fit, and nothing published after it may wait behind it."""
    topics = Topics(prefix=f"hostile-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(
        services.kafka_bootstrap_servers, topics, commands_max_message_bytes=8_000_000
    )
    worker = WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path)
    worker.start()
    value = b"x" * 999_000  # under STOCKWORKER_MAX_MESSAGE_BYTES (1,000,000): parsed, NOT_JSON
    headers = [(f"h-{i:05d}", b"v" * 100) for i in range(3_000)]
    before = command("ReceivePOItem", sku="BIG", po_number="B-0", quantity=10)
    after = command("PickStock", sku="BIG", quantity=1)
    started = time.monotonic()
    producer = await large_record_producer(services)
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            await producer.send_and_wait(topics.commands, encode(before), key=b"BIG")
            await producer.send_and_wait(topics.commands, value, key=b"BIG", headers=headers)
            await producer.send_and_wait(topics.commands, encode(after), key=b"BIG")
            await events.until(
                lambda c: after["command_id"] in c.results() and bool(c.on(topics.dead_letters)),
                BOUND_SECONDS,
            )
            await events.settle(2.0)
            assert worker.alive()
    finally:
        await producer.stop()
        worker.stop()
        await delete_topics(services.kafka_bootstrap_servers, topics)
    [dead] = events.on(topics.dead_letters)
    assert dead.header("dlq.error.code") == b"NOT_JSON"
    assert dead.value == value  # the value fits whole; the original headers give way
    dropped = int(dead.header("dlq.headers.dropped"))
    assert 0 < dropped < len(headers)
    assert events.results()[after["command_id"]]["type"] == "CommandAccepted"
    faults = Counter({"record at the limit with 3,000 headers": 1})
    summary = await verify(
        "dead-letter-at-the-limit", topics, events, database_url, [before, after], None, faults,
        started,
    )  # fmt: skip
    assert (summary.commands_lost, summary.parked, summary.ledger_differences) == (0, 0, 0)
    assert summary.dead_letters == {"NOT_JSON": 1}
