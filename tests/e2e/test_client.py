"""The typed client against a running worker: commands built from the contract's
models, keyed as the contract says, their results awaited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from stockworker.adapters.kafka.admin import ensure_topics
from stockworker.adapters.kafka.topic_reader import TopicReader, TopicRecord
from stockworker.client import (
    Sendable,
    StockClient,
    command_bytes,
    encode_command,
    new_command_id,
)
from stockworker.config import Settings
from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import (
    AdjustInventory,
    AnyCommand,
    ConfigureItem,
    ConfigureLocation,
    PickStock,
    ReceivePOItem,
)
from stockworker.contract.events import CommandAccepted, CommandRejected
from stockworker.entrypoints.demo import run_demo
from stockworker.service.topics import Topics
from tests.support.kafka_io import delete_topics
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _common(sku: str = "SKU-C") -> dict[str, Any]:
    return {"command_id": new_command_id(), "occurred_at": NOW, "sku": sku, "location": "WH1"}


async def test_results_of_accepted_rejected_and_repeated_commands_are_awaited(
    services: Services, topics: Topics, worker: WorkerProcess
) -> None:
    async with StockClient(services.kafka_bootstrap_servers, topics.prefix) as client:
        receipt = ReceivePOItem(
            **_common(), po_number="PO-7", po_line=1, quantity=10, unit_cost="2.5"
        )
        accepted = await client.send_and_wait(receipt, timeout=60)
        assert isinstance(accepted, CommandAccepted)
        assert (accepted.command_id, accepted.sku, accepted.version) == (
            receipt.command_id,
            "SKU-C",
            1,
        )

        too_many = PickStock(**_common(), quantity=50, order_ref="SO-1")
        rejected = await client.send_and_wait(too_many, timeout=60)
        assert isinstance(rejected, CommandRejected)
        assert rejected.reason_code == RejectionCode.INSUFFICIENT_AVAILABLE

        # Sent again: the stored result, the same event id; nothing applied twice.
        again = await client.send_and_wait(receipt, timeout=60)
        assert again == accepted

        # Many at once, on several SKUs: each gets its own result.
        picks = [
            AdjustInventory(**_common(f"SKU-{i % 4}"), delta=i + 1, reason="FOUND")
            for i in range(12)
        ]
        results = await asyncio.gather(*(client.send_and_wait(p, timeout=60) for p in picks))
        assert [r.command_id for r in results] == [p.command_id for p in picks]
        assert all(isinstance(r, CommandAccepted) for r in results)


async def _commands_topic(bootstrap: str, topics: Topics) -> list[TopicRecord]:
    async with TopicReader(bootstrap) as reader:
        bounds = await reader.bounds(topics.commands)
        ranges = {p: (b.beginning, b.end) for p, b in bounds.items()}
        return [r async for batch in reader.read(topics.commands, ranges) for r in batch]


async def test_commands_are_keyed_as_the_contract_says(services: Services, topics: Topics) -> None:
    async with StockClient(services.kafka_bootstrap_servers, topics.prefix) as client:
        await client.send(AdjustInventory(**_common("SKU-K"), delta=1, reason="FOUND"))
        await client.send(
            ConfigureLocation(
                command_id=new_command_id(), occurred_at=NOW, code="WH-9", name="Nine"
            ),
            headers=[("traceparent", b"00-abc-01")],
        )
    records = await _commands_topic(services.kafka_bootstrap_servers, topics)
    assert sorted(r.key for r in records if r.key) == [b"SKU-K", b"WH-9"]
    [location] = [r for r in records if r.key == b"WH-9"]
    assert location.header("traceparent") == b"00-abc-01"


async def test_no_worker_means_a_timeout_that_names_the_command(
    services: Services, topics: Topics
) -> None:
    async with StockClient(services.kafka_bootstrap_servers, topics.prefix) as client:
        command = AdjustInventory(**_common(), delta=1, reason="FOUND")
        with pytest.raises(TimeoutError, match=str(command.command_id)):
            await client.send_and_wait(command, timeout=0.5)


async def test_many_commands_are_sent_in_order_and_their_results_awaited_in_order(
    services: Services, topics: Topics, worker: WorkerProcess
) -> None:
    # One SKU: the receipt must be applied before the picks that need its stock.
    receipt = ReceivePOItem(
        **_common("SKU-M"), po_number="PO-M", po_line=1, quantity=5, unit_cost="1"
    )
    picks = [PickStock(**_common("SKU-M"), quantity=2, order_ref=f"SO-{i}") for i in range(3)]
    async with StockClient(services.kafka_bootstrap_servers, topics.prefix, linger_ms=20) as client:
        # Encoded ahead of time or not, both go; a command repeated gets its result too.
        commands: list[Sendable] = [receipt, *(encode_command(p) for p in picks), receipt]
        results = await client.send_and_wait_many(commands, timeout=60)
    assert [r.command_id for r in results] == [c.command_id for c in commands]
    assert [type(r).__name__ for r in results] == [
        "CommandAccepted",
        "CommandAccepted",
        "CommandAccepted",
        "CommandRejected",  # 5 received, 2 + 2 picked: 1 left for the third
        "CommandAccepted",
    ]
    assert [r.version for r in results if isinstance(r, CommandAccepted)] == [1, 2, 3, 1]
    records = await _commands_topic(services.kafka_bootstrap_servers, topics)
    sent: list[AnyCommand] = [receipt, *picks, receipt]
    assert [r.value for r in records] == [command_bytes(c) for c in sent]


async def test_send_many_returns_once_the_broker_has_every_command(
    services: Services, topics: Topics
) -> None:
    commands = [
        AdjustInventory(**_common(f"SKU-{i % 7}"), delta=1, reason="FOUND") for i in range(500)
    ]

    async def paced() -> AsyncIterator[AdjustInventory]:
        for i, command in enumerate(commands):
            if i % 100 == 0:
                await asyncio.sleep(0.01)
            yield command

    async with StockClient(services.kafka_bootstrap_servers, topics.prefix, linger_ms=5) as client:
        assert await client.send_many(commands[:250]) == 250
        assert await client.send_many(paced()) == 500
    # Every command there, each SKU's in the order sent (across SKUs it is not defined).
    records = await _commands_topic(services.kafka_bootstrap_servers, topics)
    by_sku: dict[bytes, list[bytes]] = {}
    for record in records:
        assert record.key is not None and record.value is not None
        by_sku.setdefault(record.key, []).append(record.value)
    expected: dict[bytes, list[bytes]] = {}
    for command in [*commands[:250], *commands]:
        expected.setdefault(command.sku.encode(), []).append(command_bytes(command))
    assert by_sku == expected


def _partition(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions  # aiokafka's default partitioner


async def test_a_command_the_broker_refuses_is_named_and_the_others_still_go(
    services: Services,
) -> None:
    # A commands topic taking at most 400 bytes per record batch, on two partitions: a
    # small command on one, a large one (a 64-character SKU, a 200-character name) alone
    # on the other, so only the large one's batch is refused.
    topics = Topics(prefix=f"test-{uuid.uuid4().hex[:10]}.")
    bootstrap = services.kafka_bootstrap_servers
    await ensure_topics(bootstrap, topics, partitions=2, commands_max_message_bytes=400)
    try:
        large_sku = "L" * 64
        small_sku = next(
            f"S{i}"
            for i in range(100)
            if _partition(f"S{i}".encode(), 2) != _partition(large_sku.encode(), 2)
        )
        small = AdjustInventory(**_common(small_sku), delta=1, reason="FOUND")
        large = ConfigureItem(
            command_id=new_command_id(), occurred_at=NOW, sku=large_sku, name="N" * 200
        )
        assert len(command_bytes(small)) < 250 < 400 < len(command_bytes(large))
        async with StockClient(bootstrap, topics.prefix) as client:
            with pytest.raises(KafkaError) as refused:
                await client.send_many([small, large])
        notes = " ".join(getattr(refused.value, "__notes__", []))
        assert f"command {large.command_id} was not delivered (1 of 2 commands failed" in notes
        records = await _commands_topic(bootstrap, topics)
        assert [r.value for r in records] == [command_bytes(small)]
    finally:
        await delete_topics(bootstrap, topics)


async def test_waiting_at_once_from_a_new_client_shares_one_results_reader(
    services: Services, topics: Topics, worker: WorkerProcess
) -> None:
    before = asyncio.all_tasks()
    commands = [AdjustInventory(**_common(f"SKU-{i}"), delta=1, reason="FOUND") for i in range(6)]
    async with StockClient(services.kafka_bootstrap_servers, topics.prefix) as client:
        results = await asyncio.gather(*(client.send_and_wait(c, timeout=60) for c in commands))
    assert [r.command_id for r in results] == [c.command_id for c in commands]
    # Every reader the waits started was stopped with the client: none is left running.
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


async def test_the_demo_publishes_through_the_client_and_prints_every_outcome(
    services: Services,
    database_url: str,
    topics: Topics,
    worker: WorkerProcess,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        topic_prefix=topics.prefix,
    )
    assert await run_demo(settings, timeout_seconds=90) == 0
    lines = capsys.readouterr().out.splitlines()
    results = [line.split()[1:3] for line in lines if line.startswith("stock.command-results")]
    assert results == [
        ["CommandAccepted", "ConfigureStockItem"],
        ["CommandAccepted", "ReceivePOItem"],
        ["CommandAccepted", "PickStock"],
        ["CommandAccepted", "PickStock"],
        ["CommandRejected", "PickStock"],
        ["CommandAccepted", "ShipStock"],
        ["CommandRejected", "ShipStock"],
        ["CommandAccepted", "ReceivePOItem"],  # the duplicate: the same version again
        ["CommandAccepted", "AdjustInventory"],
        ["CommandAccepted", "ReceivePOItem"],
    ]
    rejections = [line for line in lines if "CommandRejected" in line]
    assert "INSUFFICIENT_AVAILABLE" in rejections[0] and "INSUFFICIENT_PICKED" in rejections[1]
    versions = [line.split()[2] for line in lines if line.startswith("stock.changed")]
    assert versions == [f"v{v}" for v in range(1, 8)]
    assert any(line.split()[1] == "LowStock" and "available=6" in line for line in lines)
    assert [line.split()[2] for line in lines if "DeadLetter" in line] == ["NOT_JSON:"]
