"""Events as outbox messages: which topic, which key, which headers."""

from __future__ import annotations

from stockworker.contract.events import (
    PurchaseOrderLineChanged,
    ResultEvent,
    StockChanged,
    StockEvent,
)
from stockworker.service.ports import OutboxMessage
from stockworker.service.topics import Topics


def event_message(event: StockEvent, topics: Topics) -> OutboxMessage:
    """Stock events are keyed by SKU (per-SKU order), purchase-order events by po_number."""
    if isinstance(event, PurchaseOrderLineChanged):
        topic, key = topics.purchase_orders, event.po_number
    else:
        topic = topics.changed if isinstance(event, StockChanged) else topics.low_stock
        key = event.sku
    return OutboxMessage(
        event_id=event.event_id,
        topic=topic,
        key=key.encode(),
        value=event.model_dump_json().encode(),
        headers=(("type", event.type.encode()),),
    )


def result_message(result: ResultEvent, topics: Topics) -> OutboxMessage:
    return OutboxMessage(
        event_id=result.event_id,
        topic=topics.results,
        key=str(result.command_id).encode(),
        value=result.model_dump_json().encode(),
        headers=(("type", result.type.encode()),),
    )
