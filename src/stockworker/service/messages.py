"""Events as outbox messages: which topic, which key, which headers, and the bytes."""

from __future__ import annotations

from decimal import Decimal

import orjson

from stockworker.domain.outcome_events import LOT_EVENTS, EventDoc
from stockworker.service.ports import Headers, OutboxMessage
from stockworker.service.topics import Topics


def event_message(event: EventDoc, topics: Topics, trace: Headers = ()) -> OutboxMessage:
    """Stock events are keyed by SKU (per-SKU order), purchase-order events by po_number.

    `trace`: the causing command's trace context headers (record_headers.trace_headers).
    """
    kind: str = event["type"]
    if kind == "PurchaseOrderLineChanged":
        topic, key = topics.purchase_orders, event["po_number"]
    elif kind == "StockChanged":
        topic, key = topics.changed, event["sku"]
    elif kind in LOT_EVENTS:
        topic, key = topics.lots, event["sku"]
    else:
        topic, key = topics.low_stock, event["sku"]
    return _message(event, topic, key, trace)


def result_message(result: EventDoc, topics: Topics, trace: Headers = ()) -> OutboxMessage:
    return _message(result, topics.results, str(result["command_id"]), trace)


def event_json(event: EventDoc) -> bytes:
    """The published bytes of an event document: exactly what its pydantic model's
    `model_dump_json` gives (tests/support/events.py holds every document the tests see
    to it), at about half the cost of pydantic-core's `to_json`. Decimals are written as
    strings, as pydantic does; UTC times end in Z."""
    return orjson.dumps(event, default=_decimal, option=orjson.OPT_UTC_Z)


def _decimal(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not part of an event document")


def _message(event: EventDoc, topic: str, key: str, trace: Headers) -> OutboxMessage:
    return OutboxMessage(
        event_id=event["event_id"],
        topic=topic,
        key=key.encode(),
        value=event_json(event),
        headers=(("type", event["type"].encode()), *trace),
    )
