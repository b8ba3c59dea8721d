"""Events as outbox messages: which topic, which key, which headers, and the bytes."""

from __future__ import annotations

from pydantic_core import to_json

from stockworker.domain.outcome_events import EventDoc
from stockworker.service.ports import OutboxMessage
from stockworker.service.topics import Topics


def event_message(event: EventDoc, topics: Topics) -> OutboxMessage:
    """Stock events are keyed by SKU (per-SKU order), purchase-order events by po_number."""
    kind: str = event["type"]
    if kind == "PurchaseOrderLineChanged":
        topic, key = topics.purchase_orders, event["po_number"]
    else:
        topic = topics.changed if kind == "StockChanged" else topics.low_stock
        key = event["sku"]
    return _message(event, topic, key)


def result_message(result: EventDoc, topics: Topics) -> OutboxMessage:
    return _message(result, topics.results, str(result["command_id"]))


def _message(event: EventDoc, topic: str, key: str) -> OutboxMessage:
    # pydantic's own serialiser: the same bytes as the event's model would give.
    return OutboxMessage(
        event_id=event["event_id"],
        topic=topic,
        key=key.encode(),
        value=to_json(event),
        headers=(("type", event["type"].encode()),),
    )
