"""The typed client against a running worker: commands built from the contract's
models, keyed as the contract says, their results awaited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from stockworker.adapters.kafka.topic_reader import TopicReader
from stockworker.client import StockClient, new_command_id
from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import (
    AdjustInventory,
    ConfigureLocation,
    PickStock,
    ReceivePOItem,
)
from stockworker.contract.events import CommandAccepted, CommandRejected
from stockworker.service.topics import Topics
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


async def test_commands_are_keyed_as_the_contract_says(services: Services, topics: Topics) -> None:
    async with StockClient(services.kafka_bootstrap_servers, topics.prefix) as client:
        await client.send(AdjustInventory(**_common("SKU-K"), delta=1, reason="FOUND"))
        await client.send(
            ConfigureLocation(
                command_id=new_command_id(), occurred_at=NOW, code="WH-9", name="Nine"
            ),
            headers=[("traceparent", b"00-abc-01")],
        )
    async with TopicReader(services.kafka_bootstrap_servers) as reader:
        bounds = await reader.bounds(topics.commands)
        ranges = {p: (b.beginning, b.end) for p, b in bounds.items()}
        records = [r async for batch in reader.read(topics.commands, ranges) for r in batch]
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
