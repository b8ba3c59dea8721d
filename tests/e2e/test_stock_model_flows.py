"""Reservations, back orders, transfers, purchase-order lines and versions end to end:
real Kafka, real PostgreSQL, the worker as its own process."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stockworker.adapters.postgres.unit_of_work import all_positions
from stockworker.domain.position import Position
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.kafka_io import EventCollector, apply_commands, command_message, publish
from tests.support.services import Services
from tests.support.worker_process import WorkerProcess, wait_for

pytestmark = pytest.mark.e2e


async def send(services: Services, topics: Topics, *bodies: dict[str, Any]) -> None:
    await publish(
        services.kafka_bootstrap_servers, topics.commands, [command_message(b) for b in bodies]
    )


async def apply(
    services: Services, topics: Topics, events: EventCollector, *bodies: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send commands and wait for their results; return the results in order."""
    return await apply_commands(services.kafka_bootstrap_servers, topics, events, bodies)


async def positions(database_url: str) -> dict[tuple[str, str], Position]:
    conn = await asyncpg.connect(database_url)
    try:
        return {(p.sku, p.location): p for p in await all_positions(conn)}
    finally:
        await conn.close()


def changes_of(events: EventCollector, topics: Topics, command_id: str) -> list[dict[str, Any]]:
    return [
        r.json() for r in events.on(topics.changed) if r.json()["cause"]["command_id"] == command_id
    ]


async def test_a_reservation_expires_by_itself(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    now = datetime.now(UTC)
    reserve = command(
        "ReserveStock",
        reservation_id="R-EXP",
        quantity=4,
        occurred_at=now.isoformat(),
        expires_at=(now + timedelta(seconds=2)).isoformat(),
    )
    results = await apply(services, topics, events, command("ReceivePOItem", quantity=10), reserve)
    assert [r["type"] for r in results] == ["CommandAccepted", "CommandAccepted"]

    def expired(c: EventCollector) -> bool:
        return any(r.json()["cause"]["reason"] == "EXPIRED" for r in c.on(topics.changed))

    await events.until(expired, 30)
    [change] = [
        r.json() for r in events.on(topics.changed) if r.json()["cause"]["reason"] == "EXPIRED"
    ]
    assert change["cause"]["command_type"] == "ExpireReservation"
    assert change["cause"]["reservation_id"] == "R-EXP"
    assert (change["deltas"]["reserved"], change["quantities"]["available"]) == (-4, 10)
    expiry_result = events.results()[str(change["cause"]["command_id"])]
    assert expiry_result["type"] == "CommandAccepted"
    stored = (await positions(database_url))[("SKU-1", "WH1")]
    assert (stored.reserved, dict(stored.reservations)) == (0, {})
    [release] = await apply(
        services, topics, events, command("ReleaseReservation", reservation_id="R-EXP")
    )
    assert release["reason_code"] == "RESERVATION_NOT_FOUND"


async def test_a_back_order_is_filled_by_a_later_receipt(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    reserve = command("ReserveStock", reservation_id="R-BO", quantity=5, allow_backorder=True)
    receipt = command("ReceivePOItem", po_number="PO-LATE", quantity=4)
    results = await apply(
        services, topics, events, command("ReceivePOItem", quantity=2), reserve, receipt
    )
    assert [r["type"] for r in results] == ["CommandAccepted"] * 3
    [reserved] = changes_of(events, topics, reserve["command_id"])
    assert (reserved["quantities"]["reserved"], reserved["quantities"]["back_ordered"]) == (2, 3)
    [filled] = changes_of(events, topics, receipt["command_id"])
    assert filled["quantities"] == {
        "on_hand": 6,
        "reserved": 5,
        "picked": 0,
        "on_order": 0,
        "back_ordered": 0,
        "available": 1,
    }
    stored = (await positions(database_url))[("SKU-1", "WH1")]
    assert (stored.reservations["R-BO"].quantity, stored.reservations["R-BO"].back_ordered) == (
        5,
        0,
    )


async def test_a_transfer_that_fails_half_way_leaves_both_positions_untouched(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    setup = [
        command("ConfigureLocation", code="WH1", name="Main"),
        command("ConfigureLocation", code="WH2", name="Overflow"),
        command("ReceivePOItem", location="WH1", po_number="PO-A", quantity=10, unit_cost="2"),
        command("ReceivePOItem", location="WH2", po_number="PO-B", quantity=98, unit_cost="2"),
    ]
    for body in setup:  # locations first: they are keyed apart from the SKU
        await apply(services, topics, events, body)
    before = await positions(database_url)
    # The database refuses the destination's new row, after the source row was written
    # in the same statement: the whole transaction must roll back.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "ALTER TABLE stock_position ADD CONSTRAINT test_wh2_is_full "
            "CHECK (location <> 'WH2' OR on_hand <= 100) NOT VALID"
        )
    finally:
        await conn.close()
    transfer = command("TransferStock", from_location="WH1", to_location="WH2", quantity=5)
    after_it = command("PickStock", location="WH1", quantity=1)
    await send(services, topics, transfer, after_it)
    await events.until(
        lambda c: bool(c.on(topics.dead_letters)) and after_it["command_id"] in c.results()
    )
    [dead] = events.on(topics.dead_letters)
    assert dead.header("dlq.error.code") == b"PROCESSING_FAILED"
    # The constraint and SQLSTATE, never the row PostgreSQL quotes in its detail.
    message = dead.header("dlq.error.message")
    assert b"test_wh2_is_full" in message and b"23514" in message
    assert b"Failing row" not in message and b"SKU-1" not in message
    assert "Failing row" not in worker.logs()
    assert dead.value == encode(transfer)
    assert transfer["command_id"] not in events.results()
    assert changes_of(events, topics, transfer["command_id"]) == []
    after = await positions(database_url)
    assert after[("SKU-1", "WH2")] == before[("SKU-1", "WH2")]
    # WH1 changed only by the pick that followed on the same partition.
    assert after[("SKU-1", "WH1")].version == before[("SKU-1", "WH1")].version + 1
    assert (after[("SKU-1", "WH1")].on_hand, after[("SKU-1", "WH1")].picked) == (10, 1)

    # And a transfer the rules refuse (too little available) changes neither either.
    [refused] = await apply(
        services,
        topics,
        events,
        command("TransferStock", from_location="WH1", to_location="WH2", quantity=50),
    )
    assert refused["reason_code"] == "INSUFFICIENT_AVAILABLE"
    assert await positions(database_url) == after


async def test_over_receipt_rejected_and_unplanned_receipt_accepted(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    order = command("OrderPOItem", po_number="PO-7", quantity=10, unit_cost="3", supplier="ACME")
    over = command("ReceivePOItem", po_number="PO-7", quantity=11, unit_cost="3")
    exact = command("ReceivePOItem", po_number="PO-7", quantity=10, unit_cost="3")
    unplanned = command("ReceivePOItem", po_number="PO-NONE", quantity=2, unit_cost="4")
    results = await apply(services, topics, events, order, over, exact, unplanned)
    assert [r["type"] for r in results] == [
        "CommandAccepted",
        "CommandRejected",
        "CommandAccepted",
        "CommandAccepted",
    ]
    assert results[1]["reason_code"] == "OVER_RECEIPT"
    await events.until(lambda c: len(c.on(topics.purchase_orders)) >= 3)
    # Keyed by po_number: ordered per purchase order, not across them.
    po_events = [r.json() for r in events.on(topics.purchase_orders)]
    by_po = {
        po: [(e["status"], e["planned"], e["version"]) for e in po_events if e["po_number"] == po]
        for po in ("PO-7", "PO-NONE")
    }
    assert by_po == {
        "PO-7": [("New", True, 1), ("ReceivedFull", True, 2)],
        "PO-NONE": [("ReceivedFull", False, 1)],
    }
    assert all(r.key == r.json()["po_number"].encode() for r in events.on(topics.purchase_orders))
    [unplanned_change] = changes_of(events, topics, unplanned["command_id"])
    assert unplanned_change["cause"]["reason"] == "UNPLANNED_RECEIPT"
    stored = (await positions(database_url))[("SKU-1", "WH1")]
    assert (stored.on_hand, stored.on_order) == (12, 0)
    assert stored.stock_value == 10 * 3 + 2 * 4


async def test_an_unreceipt_is_refused_after_the_stock_was_picked(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    results = await apply(
        services,
        topics,
        events,
        command("OrderPOItem", quantity=5, unit_cost="2"),
        command("ReceivePOItem", quantity=5, unit_cost="2"),
        command("PickStock", quantity=4),
        command("UnreceivePOItem", quantity=2),
        command("UnreceivePOItem", quantity=1),
    )
    assert [r["type"] for r in results] == ["CommandAccepted"] * 3 + [
        "CommandRejected",
        "CommandAccepted",
    ]
    assert results[3]["reason_code"] == "INSUFFICIENT_AVAILABLE"
    stored = (await positions(database_url))[("SKU-1", "WH1")]
    # The un-receipt took back 1 at its receipt cost and reopened 1 on the line.
    assert (stored.on_hand, stored.picked, stored.on_order, stored.stock_value) == (
        4,
        4,
        1,
        Decimal(8),
    )


async def test_a_stale_expected_version_is_a_version_conflict(
    services: Services,
    topics: Topics,
    worker: WorkerProcess,
    events: EventCollector,
    database_url: str,
) -> None:
    results = await apply(
        services,
        topics,
        events,
        command("ConfigureStockItem"),
        command("ReceivePOItem", quantity=5),
        command("PickStock", quantity=1, expected_version=1),
        command("PickStock", quantity=1, expected_version=2),
    )
    assert results[2]["reason_code"] == "VERSION_CONFLICT"
    assert results[2]["current_version"] == 2
    assert results[3]["type"] == "CommandAccepted" and results[3]["version"] == 3
    stored = (await positions(database_url))[("SKU-1", "WH1")]
    assert (stored.picked, stored.version) == (1, 3)


async def test_200_concurrent_reservations_from_two_workers_never_over_reserve(
    services: Services, topics: Topics, database_url: str, tmp_path: Path
) -> None:
    on_hand = 100
    rng = random.Random(200)
    reserves = [
        command(
            "ReserveStock",
            sku="HOT",
            reservation_id=f"R-{i}",
            order_ref=f"SO-{i}",
            quantity=rng.randint(1, 3),
        )
        for i in range(200)
    ]
    group = f"hot-{uuid.uuid4().hex[:6]}"
    workers = [
        WorkerProcess(database_url, services.kafka_bootstrap_servers, topics, tmp_path / str(i),
                      group_id=group, batch_size="20")
        for i in range(2)
    ]  # fmt: skip
    for w in workers:
        w.log_dir.mkdir()
        w.start()
    try:
        async with EventCollector(services.kafka_bootstrap_servers, topics) as events:
            for w in workers:
                assert await asyncio.to_thread(
                    wait_for, lambda w=w: "assigned to partitions" in w.logs(), 60
                )
            await apply(
                services, topics, events, command("ReceivePOItem", sku="HOT", quantity=on_hand)
            )
            # A publisher that does not key by SKU: the reservations for one position land
            # on every partition, so both workers apply them at the same time.
            await publish(
                services.kafka_bootstrap_servers,
                topics.commands,
                [(f"k{i}".encode(), encode(b)) for i, b in enumerate(reserves)],
            )
            ids = {b["command_id"] for b in reserves}
            await events.until(lambda c: ids <= set(c.results()), 120)
            results = events.results()
            changed = [r.json() for r in events.on(topics.changed) if r.json()["sku"] == "HOT"]
    finally:
        for w in workers:
            w.stop()

    accepted = [b for b in reserves if results[b["command_id"]]["type"] == "CommandAccepted"]
    refused = [b for b in reserves if results[b["command_id"]]["type"] == "CommandRejected"]
    assert {results[b["command_id"]].get("reason_code") for b in refused} <= {
        "INSUFFICIENT_AVAILABLE"
    }
    stored = (await positions(database_url))[("HOT", "WH1")]
    reserved = sum(b["quantity"] for b in accepted)
    assert stored.reserved == reserved <= on_hand
    assert stored.available == on_hand - reserved >= 0
    assert len(stored.reservations) == len(accepted)
    # Nothing was refused that could have been reserved: available only ever shrank.
    assert all(b["quantity"] > stored.available for b in refused)
    # Every committed state had reserved <= on_hand, one event per version, no gaps.
    assert sorted(e["version"] for e in changed) == list(range(1, stored.version + 1))
    assert all(e["quantities"]["reserved"] <= e["quantities"]["on_hand"] for e in changed)
    # Both processes decided some of them (one may have got only the refusals).
    for w in workers:
        assert "stockworker stopped" in w.logs()
        assert "BatchReport(applied=0, rejected=0," not in w.logs()
