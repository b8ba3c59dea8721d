"""The snapshot topic's records, the relay's order (snapshots before their events), and
events rebuilt from the ledger equal to those the worker published."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from stockworker.contract.commands import AnyCommand, Command
from stockworker.contract.events import PositionSnapshot
from stockworker.domain.decide import decide
from stockworker.domain.ledger import LedgerEntry, ledger_entry, references_of
from stockworker.domain.outcome import Outcome
from stockworker.domain.outcome_events import outcome_events
from stockworker.domain.state import StockState
from stockworker.service.messages import event_json, event_message
from stockworker.service.ports import OutboxMessage, PendingMessage
from stockworker.service.relay import OutboxRelay
from stockworker.service.republish import KINDS, Selection, position_snapshot, rebuilt_events
from stockworker.service.snapshots import (
    is_snapshot_row,
    latest_snapshots,
    snapshot_document,
    snapshot_key,
    snapshot_message,
    snapshot_row,
)
from stockworker.service.topics import Topics
from tests.support.domain import cmd
from tests.unit.test_domain_properties import commands, large_commands, setup

TOPICS = Topics("t.")


def applied(
    commands: Sequence[AnyCommand],
) -> list[tuple[AnyCommand, list[dict[str, Any]], list[LedgerEntry]]]:
    """Each command decided and applied in turn: its events and its ledger entries, as the
    worker writes them (the references with them)."""
    state = StockState.of([])
    out = []
    for command in commands:
        decision = decide(state, command)
        assert isinstance(decision, Outcome), (command, decision)
        _, events = outcome_events(command, decision)
        state.apply(decision)
        entries = [
            ledger_entry(
                change,
                command.command_id,
                command.type,
                command.occurred_at,
                references_of(command),
            )
            for change in decision.positions
        ]
        out.append((command, events, entries))
    return out


PLUS_TWO = datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=2))).isoformat()
STREAM = [
    cmd("ConfigureLocation", code="WH1"),
    cmd("ConfigureLocation", code="WH2"),
    cmd("ConfigureStockItem", low_stock_threshold=5, max_quantity=50, bin="A-1"),
    cmd("ReceivePOItem", po_number="PO-9", po_line=3, quantity=12, unit_cost="2.5"),
    cmd("ReserveStock", reservation_id="R-1", order_ref="ORD-1", quantity=4),
    cmd("PickStock", order_ref="ORD-1", reservation_id="R-1", quantity=4),
    cmd("AdjustInventory", delta=-5, reason="DAMAGE", occurred_at=PLUS_TWO),
    cmd("TransferStock", from_location="WH1", to_location="WH2", quantity=2),
    cmd("ConfigureStockItem", low_stock_threshold=0, max_quantity=50, preferred_supplier="S"),
]


# A lot item: what a StockChanged of it says (movements, available without expired
# stock, the crossing an expiry causes) must come back from the ledger alone.
TRACKED = [
    cmd("ConfigureItem", sku="LOT-1", tracking="lot"),
    cmd("ConfigureStockItem", sku="LOT-1", low_stock_threshold=1),
    cmd("ReceivePOItem", sku="LOT-1", quantity=5, lot="OLD", expires_on="2026-11-01"),
    cmd("ReceivePOItem", sku="LOT-1", po_number="PO-2", quantity=2, lot="NEW"),
    cmd("ReserveStock", sku="LOT-1", reservation_id="R-9", quantity=6),
    cmd("ExpireLot", sku="LOT-1", lot="OLD", stage="expired"),
    cmd("AdjustInventory", sku="LOT-1", delta=-5, reason="DAMAGE", lot="OLD"),
    cmd("ConfigureItem", sku="SER-1", tracking="serial"),
    cmd("ReceivePOItem", sku="SER-1", po_number="PO-3", quantity=2, serials=["B", "A"]),
    cmd("PickStock", sku="SER-1", quantity=1, order_ref="O-1"),
]


def test_tracked_events_rebuilt_from_the_ledger_are_the_published_ones() -> None:
    previous: dict[tuple[str, str], LedgerEntry] = {}
    for _, events, entries in applied(TRACKED):
        rebuilt = []
        for entry in entries:
            docs, missing = rebuilt_events(entry, previous.get((entry.sku, entry.location)), KINDS)
            assert missing == []
            rebuilt += docs
            previous[entry.sku, entry.location] = entry
        # Lot events, like purchase-order events, are not republished.
        stock = [e for e in events if e["type"] in ("StockChanged", "LowStock", "StockReplenished")]
        assert [event_json(d) for d in rebuilt] == [event_json(e) for e in stock]
    expiry = applied(TRACKED)[5][1]
    assert [e["type"] for e in expiry] == ["StockChanged", "LowStock", "LotExpired"]
    assert expiry[0]["quantities"]["available"] == 0  # 2 unexpired, reserved 6 -> 2


def test_events_rebuilt_from_the_ledger_are_the_published_ones_byte_for_byte() -> None:
    history = applied(STREAM)
    previous: dict[tuple[str, str], LedgerEntry] = {}
    kinds_seen: set[str] = set()
    for _, events, entries in history:
        rebuilt = []
        for entry in entries:
            docs, missing = rebuilt_events(entry, previous.get((entry.sku, entry.location)), KINDS)
            assert missing == []
            rebuilt += docs
            previous[entry.sku, entry.location] = entry
        # The worker's order is per position: StockChanged then its crossing, if any.
        # (PurchaseOrderLineChanged is not republished: the line's past is not kept.)
        stock = [e for e in events if e["type"] != "PurchaseOrderLineChanged"]
        assert [event_json(d) for d in rebuilt] == [event_json(e) for e in stock]
        kinds_seen.update(e["type"] for e in stock)
    assert kinds_seen == {"StockChanged", "LowStock", "StockReplenished"}
    adjusted = history[6][1][0]
    assert event_json(adjusted).count(b'"occurred_at":"2026-11-23T12:00:00+02:00"') == 1


def test_an_entry_without_the_one_before_gives_its_stock_changed_but_no_crossing() -> None:
    history = applied(STREAM[:5])
    [reserve] = history[4][2]
    docs, missing = rebuilt_events(reserve, None, KINDS)
    assert [d["type"] for d in docs] == ["StockChanged"] and missing == ["low-stock"]
    assert event_json(docs[0]) == event_json(history[4][1][0])


def test_an_entry_written_before_migration_0008_is_not_rebuilt() -> None:
    [entry] = applied(STREAM[:3])[2][2]
    from dataclasses import replace

    docs, missing = rebuilt_events(replace(entry, settings=None), None, KINDS)
    assert (docs, missing) == ([], ["changed", "low-stock"])


def test_a_selection_matches_by_sku_location_and_half_open_time_range() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    chosen = Selection(since=t, until=t + timedelta(hours=1), skus=("A",), location="WH1")
    assert chosen.matches("A", "WH1", t)
    assert not chosen.matches("A", "WH1", t + timedelta(hours=1))
    assert not chosen.matches("B", "WH1", t)
    assert not chosen.matches("A", "WH2", t)
    assert not chosen.matches("A", "WH1", None)
    assert Selection().matches(None, None, None)


# --- The snapshot topic -------------------------------------------------------------


def changed_messages() -> list[OutboxMessage]:
    return [
        event_message(e, TOPICS)
        for _, events, _ in applied(STREAM)
        for e in events
        if e["type"] == "StockChanged"
    ]


def test_a_snapshot_is_the_position_after_its_stock_changed() -> None:
    message = changed_messages()[3]
    changed = orjson.loads(message.value)
    snapshot = snapshot_message(message)
    assert snapshot is not None
    assert (snapshot.topic, snapshot.key) == ("t.stock.positions.v1", b"SKU-1\x00WH1")
    assert snapshot.key == snapshot_key("SKU-1", "WH1")
    assert snapshot.event_id == message.event_id
    model = PositionSnapshot.model_validate_json(snapshot.value)
    assert snapshot.value == model.model_dump_json().encode()
    assert orjson.loads(snapshot.value) == {
        "type": "PositionSnapshot",
        **{
            k: changed[k]
            for k in (
                "sku",
                "location",
                "version",
                "event_id",
                "occurred_at",
                "quantities",
                "valuation",
                "settings",
            )
        },
    }


def test_only_a_stock_changed_on_a_changed_topic_gets_a_snapshot() -> None:
    changed = changed_messages()[0]
    other = OutboxMessage(uuid.uuid4(), TOPICS.results, b"k", b"{}", (("type", b"X"),))
    unreadable = OutboxMessage(
        uuid.uuid4(), TOPICS.changed, b"k", b'{"n": 1}', (("type", b"StockChanged"),)
    )
    elsewhere = OutboxMessage(
        changed.event_id, "t.elsewhere", changed.key, changed.value, changed.headers
    )
    assert [snapshot_message(m) for m in (other, unreadable, elsewhere)] == [None] * 3


def test_a_batch_sends_one_snapshot_per_position_its_last() -> None:
    messages = changed_messages()
    chosen = latest_snapshots(messages)
    last = {}
    for i, m in enumerate(messages):
        doc = orjson.loads(m.value)
        last[doc["sku"], doc["location"]] = i
    assert list(chosen) == sorted(last.values())
    for i, snapshot in chosen.items():
        assert orjson.loads(snapshot.value)["version"] == orjson.loads(messages[i].value)["version"]


class FakeSession:
    def __init__(self, rows: list[PendingMessage]) -> None:
        self.rows = rows
        self.deleted: list[int] = []
        self.parked: list[int] = []

    async def try_lead(self) -> bool:
        return True

    async def wait_for_rows(self, seconds: float) -> None:
        return None

    async def fetch_unpublished(self, limit: int) -> list[PendingMessage]:
        gone = set(self.deleted) | set(self.parked)
        return [r for r in self.rows if r.id not in gone][:limit]

    async def delete_published(self, ids: Sequence[int]) -> None:
        self.deleted.extend(ids)

    async def park(self, id: int, reason: str) -> None:
        self.parked.append(id)

    async def close(self) -> None:
        return None


class FakePublisher:
    """Records each publish call; fails the snapshots of the first `fail_snapshots` calls."""

    def __init__(self, log: list[list[OutboxMessage]], fail_snapshots: list[int]) -> None:
        self.log = log
        self.fail_snapshots = fail_snapshots

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[Exception | None]:
        self.log.append(list(messages))
        if self.fail_snapshots and all(m.topic == TOPICS.snapshot for m in messages):
            self.fail_snapshots.pop()
            return [TimeoutError("no answer")] * len(messages)
        return [None] * len(messages)


async def relay_once(fail_snapshots: int) -> tuple[list[list[OutboxMessage]], FakeSession]:
    rows = [PendingMessage(i, m) for i, m in enumerate(changed_messages(), 1)]
    session = FakeSession(rows)
    calls: list[list[OutboxMessage]] = []
    failures = [1] * fail_snapshots
    relay = OutboxRelay(
        open_session=lambda: _ready(session),
        new_publisher=lambda: FakePublisher(calls, failures),
        is_unpublishable=lambda exc: False,
    )
    relay._publisher = FakePublisher(calls, failures)
    await relay._publish_batch(session)
    return calls, session


async def _ready(session: FakeSession) -> Any:
    return session


async def test_the_relay_publishes_a_batchs_snapshots_before_its_rows() -> None:
    calls, session = await relay_once(fail_snapshots=0)
    snapshots, rows = calls
    assert {m.topic for m in snapshots} == {TOPICS.snapshot}
    assert [m.event_id for m in rows] == [m.event_id for m in changed_messages()]
    assert session.deleted == list(range(1, len(rows) + 1))


async def test_when_a_snapshot_fails_each_row_goes_after_its_own_snapshot() -> None:
    calls, session = await relay_once(fail_snapshots=1)
    failed_snapshots, *one_by_one = calls
    assert all(len(c) == 1 for c in one_by_one)
    sent = [c[0] for c in one_by_one]
    # Every row once, in order; a position's last row right after its snapshot.
    assert [m.event_id for m in sent if m.topic == TOPICS.changed] == [
        m.event_id for m in changed_messages()
    ]
    for i, m in enumerate(sent):
        if m.topic == TOPICS.snapshot:
            assert sent[i + 1].event_id == m.event_id and sent[i + 1].topic == TOPICS.changed
    assert sum(m.topic == TOPICS.snapshot for m in sent) == len(failed_snapshots)
    assert session.deleted == list(range(1, len(changed_messages()) + 1))


@pytest.mark.parametrize("prefix", ["", "env-a."])
def test_the_snapshot_topic_follows_the_changed_topics_prefix(prefix: str) -> None:
    topics = Topics(prefix)
    assert Topics.of_changed(topics.changed) == topics
    assert topics.snapshot == f"{prefix}stock.positions.v1"
    assert topics.snapshot in topics.all()
    assert Topics.of_changed(topics.results) is None


async def test_a_seeded_snapshot_row_goes_out_once_unless_a_later_change_supersedes_it() -> None:
    changes = changed_messages()
    first = orjson.loads(changes[0].value)
    seeded = snapshot_row(snapshot_document(first), TOPICS)
    assert is_snapshot_row(seeded) and snapshot_message(seeded) is seeded
    # A seeded row before a change of its position, then one after it.
    later = snapshot_row(snapshot_document(orjson.loads(changes[1].value)), TOPICS)
    rows = [PendingMessage(1, seeded), PendingMessage(2, changes[1]), PendingMessage(3, later)]
    session = FakeSession(rows)
    calls: list[list[OutboxMessage]] = []
    relay = OutboxRelay(
        open_session=lambda: _ready(session),
        new_publisher=lambda: FakePublisher(calls, []),
        is_unpublishable=lambda exc: False,
    )
    relay._publisher = FakePublisher(calls, [])
    await relay._publish_batch(session)
    snapshots, published = calls
    assert snapshots == [later]  # the last of the position, once
    assert published == [changes[1]]  # snapshot rows are not sent twice
    assert sorted(session.deleted) == [1, 2, 3]


_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)
offsets = st.sampled_from(
    ["2026-03-01T12:00:00+00:00", "2026-03-01T12:00:00.250000+05:30", "2026-03-01T07:00:00-04:00"]
)


@settings(max_examples=100)
@given(st.lists(st.one_of(commands, large_commands), min_size=10, max_size=40), offsets)
def test_every_snapshot_is_its_models_json_and_seeding_gives_the_same_bytes(
    bodies: list[dict[str, Any]], occurred_at: str
) -> None:
    """For any command sequence: the relay's snapshot of each StockChanged is exactly its
    model's JSON, and `events snapshot` writes the same record for that state."""
    state = StockState()
    for body in [*setup(), *bodies]:
        command = _adapter.validate_python({**body, "occurred_at": occurred_at})
        decision = decide(state, command)
        if not isinstance(decision, Outcome):
            continue
        _, events = outcome_events(command, decision)
        changed = [event_message(e, TOPICS) for e in events if e["type"] == "StockChanged"]
        for change, message in zip(decision.positions, changed, strict=True):
            snapshot = snapshot_message(message)
            assert snapshot is not None
            model = PositionSnapshot.model_validate_json(snapshot.value)
            assert snapshot.value == model.model_dump_json().encode()
            entry = ledger_entry(change, command.command_id, command.type, command.occurred_at)
            seeded = snapshot_row(position_snapshot(change.after, entry), TOPICS)
            assert (seeded.key, seeded.value, seeded.event_id) == (
                snapshot.key,
                snapshot.value,
                snapshot.event_id,
            )
        state.apply(decision)
