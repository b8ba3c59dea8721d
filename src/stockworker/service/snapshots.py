"""The compacted snapshot topic (`stock.positions.v1`): each position's latest state.

The relay derives a PositionSnapshot from every StockChanged it publishes (the event
holds the position's whole state after the change), keyed by `snapshot_key`, and sends
it before the event (service/relay.py says why). Nothing more is written to the
database: the snapshot costs the relay ~3 us of CPU and one more record per change
(per position and relay batch: a batch sends only a position's last snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from stockworker.service.messages import event_json
from stockworker.service.ports import OutboxMessage
from stockworker.service.topics import SNAPSHOT, Topics

_STOCK_CHANGED = ("type", b"StockChanged")
_POSITION_SNAPSHOT = ("type", b"PositionSnapshot")
# A PositionSnapshot is a StockChanged without its cause and deltas, fields in the same
# order: its bytes are cut from the event's (~2.5 us a row, against ~6 to parse and dump).
_HEAD = ("event_id", "occurred_at", "sku", "location", "version")
_STATE = ("quantities", "valuation", "settings")
_CHANGED_START = b'{"type":"StockChanged"'
_SNAPSHOT_START = b'{"type":"PositionSnapshot"'
_EVENT_ID = b',"event_id":'
_SKU = b'"sku":'
_CAUSE = b',"cause":'
_QUANTITIES = b',"quantities":'


def snapshot_key(sku: str, location: str) -> bytes:
    """The record key of a position on the snapshot topic: SKU, NUL, location, in UTF-8.
    Neither may hold a control character (contract/fields.py), so the key is unambiguous."""
    return f"{sku}\x00{location}".encode()


def snapshot_document(changed: dict[str, Any]) -> dict[str, Any]:
    """A PositionSnapshot document (its model's field order) from a StockChanged's."""
    return {
        "type": "PositionSnapshot",
        **{name: changed[name] for name in _HEAD},
        **{name: changed[name] for name in _STATE},
    }


def is_snapshot_row(message: OutboxMessage) -> bool:
    """An outbox row that is itself a snapshot (`stockworker events snapshot` writes them
    so a snapshot of an unchanged position leaves in order with the relay's own)."""
    return _POSITION_SNAPSHOT in message.headers and message.topic.endswith(SNAPSHOT)


def snapshot_row(document: dict[str, Any], topics: Topics) -> OutboxMessage:
    """The outbox row of a snapshot document (its values as pydantic would hold them)."""
    return OutboxMessage(
        event_id=document["event_id"],
        topic=topics.snapshot,
        key=snapshot_key(document["sku"], document["location"]),
        value=event_json(document),
        headers=(_POSITION_SNAPSHOT,),
    )


_snapshot_topics: dict[str, str | None] = {}


def _snapshot_topic(changed_topic: str) -> str | None:
    """The snapshot topic beside a changed topic (remembered: the relay asks per row)."""
    found = _snapshot_topics.get(changed_topic, False)
    if found is False:
        topics = Topics.of_changed(changed_topic)
        found = _snapshot_topics[changed_topic] = topics.snapshot if topics else None
    return found if isinstance(found, str) else None


def snapshot_message(message: OutboxMessage) -> OutboxMessage | None:
    """The snapshot record of a StockChanged outbox message (a snapshot row is its own),
    or None for any other message (or one that does not read as a StockChanged: it is
    published as it is)."""
    if is_snapshot_row(message):
        return message
    if _STOCK_CHANGED not in message.headers:
        return None
    topic = _snapshot_topic(message.topic)
    if topic is None:
        return None
    value = message.value
    try:
        if not value.startswith(_CHANGED_START):
            raise ValueError("not a StockChanged document")
        # Quotes inside JSON strings are escaped: these markers are the top-level keys.
        head_end = value.index(_CAUSE)
        position = orjson.loads(b"{" + value[value.index(_SKU, 0, head_end) : head_end] + b"}")
        key = snapshot_key(position["sku"], position["location"])
        snapshot = (
            _SNAPSHOT_START
            + value[value.index(_EVENT_ID, 0, head_end) : head_end]
            + value[value.index(_QUANTITIES, head_end) :]
        )
    except (ValueError, KeyError, TypeError):  # orjson.JSONDecodeError is a ValueError
        return None
    return OutboxMessage(
        event_id=message.event_id,
        topic=topic,
        key=key,
        value=snapshot,
        headers=(_POSITION_SNAPSHOT,),
    )


def latest_snapshots(messages: Sequence[OutboxMessage]) -> dict[int, OutboxMessage]:
    """The snapshot records of a batch, by the index of the message they come from: only
    a position's last one (compaction would keep nothing else), so a hot position costs
    one snapshot a batch."""
    last: dict[tuple[str, bytes | None], tuple[int, OutboxMessage]] = {}
    for i, message in enumerate(messages):
        snapshot = snapshot_message(message)
        if snapshot is not None:
            last[snapshot.topic, snapshot.key] = (i, snapshot)
    return dict(sorted(last.values(), key=lambda pair: pair[0]))
