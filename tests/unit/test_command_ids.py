"""A command_id names one payload: a reuse is refused, a refused invalid command burns nothing."""

from __future__ import annotations

import json
from typing import Any

from stockworker.contract.commands import AdjustInventory
from stockworker.domain.decoding import decode_command
from stockworker.domain.idempotency import command_fingerprint, same_command
from stockworker.domain.position import PositionKey
from stockworker.service.command_batch import CommandBatchService
from stockworker.service.ports import InboundRecord
from stockworker.service.topics import Topics
from tests.support.builders import command, encode
from tests.support.fake_store import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("t.")
KEY = PositionKey("SKU-1", "WH1")


def service(db: FakeDatabase) -> CommandBatchService:
    return CommandBatchService(lambda: FakeUnitOfWork(db), TOPICS, is_transient=lambda e: False)


async def send(db: FakeDatabase, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """Process `bodies` as one batch; the results it published, in order."""
    before = len(db.outbox)
    records = [
        InboundRecord(TOPICS.commands, 0, i, b"SKU-1", encode(body))
        for i, body in enumerate(bodies)
    ]
    await service(db).process(records)
    return [json.loads(m.value) for m in db.outbox[before:] if m.topic == TOPICS.results]


def result_ids(db: FakeDatabase) -> list[str]:
    return [str(m.event_id) for m in db.outbox if m.topic == TOPICS.results]


async def test_a_command_id_reused_for_another_payload_is_refused_and_changes_nothing() -> None:
    db = FakeDatabase()
    first = command("ReceivePOItem", quantity=10)
    await send(db, first)
    for changed in ({"quantity": 20}, {"sku": "SKU-2"}, {"po_line": 2}):
        reused = {**first, **changed}
        [result] = await send(db, reused)
        assert result["type"] == "CommandRejected"
        assert result["reason_code"] == "COMMAND_ID_REUSED"
        assert result["command_id"] == first["command_id"]
        # It names what the id was first used for.
        assert "ReceivePOItem" in result["message"] and "'SKU-1'" in result["message"]
        assert "'WH1'" in result["message"]
    assert db.positions[KEY].on_hand == 10
    assert PositionKey("SKU-2", "WH1") not in db.positions
    # The stored result is still the first one: a redelivery of the first gets it again.
    [again] = await send(db, first)
    assert again["type"] == "CommandAccepted"


async def test_the_same_command_spelled_differently_is_a_duplicate() -> None:
    db = FakeDatabase()
    first = command("ReceivePOItem", quantity=10, unit_cost="5")
    await send(db, first)
    same = {
        **first,
        "unit_cost": "5.000",
        # When the publisher built the message again: not part of what it asks for.
        "occurred_at": "2026-11-23T11:00:00+01:00",
    }
    [result] = await send(db, dict(reversed(list(same.items()))))
    assert result["type"] == "CommandAccepted"
    assert db.positions[KEY].on_hand == 10
    assert len(set(result_ids(db))) == 1


async def test_a_reuse_in_the_same_batch_is_refused_too() -> None:
    db = FakeDatabase()
    first = command("ReceivePOItem", quantity=10)
    results = await send(db, first, {**first, "quantity": 3})
    assert [r.get("reason_code") for r in results] == [None, "COMMAND_ID_REUSED"]
    assert db.positions[KEY].on_hand == 10


async def test_an_invalid_command_does_not_burn_its_id() -> None:
    db = FakeDatabase()
    broken = command("ReceivePOItem", quantity=0)
    [refused] = await send(db, broken)
    assert refused["reason_code"] == "INVALID_COMMAND"
    # The same bytes again: the same rejection, with the same event id.
    [again] = await send(db, broken)
    assert again == refused
    assert len(set(result_ids(db))) == 1
    corrected = {**broken, "quantity": 4}
    [accepted] = await send(db, corrected)
    assert accepted["type"] == "CommandAccepted"
    assert db.positions[KEY].on_hand == 4
    # Its own event id: a subscriber deduplicating on event_id keeps both results.
    assert len(set(result_ids(db))) == 2


def test_the_stored_fingerprint_format_does_not_drift() -> None:
    """Fingerprints live in the inbox across releases: a change to how they are computed
    would make every redelivery after an upgrade look like a reused id."""
    body = {
        "type": "AdjustInventory",
        "command_id": "8a8f2d0c-3a52-4a5e-9d43-6e1f0c1e2b11",
        "occurred_at": "2026-11-23T10:00:00+00:00",
        "sku": "SKU-1",
        "location": "WH1",
        "delta": -2,
        "reason": "DAMAGE",
        "unit_cost": "1.50",
    }
    decoded = decode_command(json.dumps(body).encode())
    assert isinstance(decoded, AdjustInventory)
    assert command_fingerprint(decoded).hex() == "01bd29ad4444a4a72c7329ff08cb6141c4"
    # A field sent at its default is the same command as one left out: a field added
    # with a default in a later release leaves the stored fingerprints as they are.
    explicit = decode_command(json.dumps({**body, "expected_version": None}).encode())
    assert isinstance(explicit, AdjustInventory)
    assert command_fingerprint(explicit) == command_fingerprint(decoded)
    # A fingerprint of another version of the algorithm is taken as the same command.
    assert same_command(b"\x00" + bytes(16), command_fingerprint(decoded))
    assert not same_command(b"\x01" + bytes(16), command_fingerprint(decoded))
