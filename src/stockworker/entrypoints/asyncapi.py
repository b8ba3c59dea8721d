"""The AsyncAPI 3.0 document of the v1 contract (`schemas/asyncapi.json`, written and
drift-checked by `stockworker schemas` with the JSON Schemas): every topic, what goes on
it, its key and headers, and what stockworker does there (receives or sends).

Built from the same pydantic models and topic names as everything else. FastStream can
generate AsyncAPI from its subscribers, but the worker reads raw record batches and its
relay publishes through its own producer, so FastStream sees none of the messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stockworker.contract.commands import COMMAND_TYPES
from stockworker.contract.events import (
    CommandAccepted,
    CommandRejected,
    LotExpired,
    LotExpiring,
    LowStock,
    PositionSnapshot,
    PurchaseOrderLineChanged,
    StockChanged,
    StockReplenished,
)
from stockworker.service.topics import Topics

_REF = "#/components/schemas/{model}"
_UUID = {"type": "string", "format": "uuid"}

_EVENT_HEADERS = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "the message's `type`"},
        "event_id": {
            **_UUID,
            "description": "the event's id: stable across re-publishing; deduplicate on it",
        },
        "republished": {
            "type": "string",
            "enum": ["true"],
            "description": "set on records sent again by `stockworker events republish`",
        },
        "traceparent": {
            "type": "string",
            "description": "W3C Trace Context of the command that caused it: the command's "
            "own, or with tracing on the worker's span for it (not on snapshots)",
        },
        "tracestate": {
            "type": "string",
            "description": "the causing command's W3C tracestate, carried with traceparent",
        },
    },
    "required": ["type", "event_id"],
}
_COMMAND_HEADERS = {
    "type": "object",
    "description": "free for the publisher; keys must be UTF-8",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C Trace Context (version 00, 55 characters): carried onto the "
            "command's result and events, so subscribers continue the trace",
        },
        "tracestate": {
            "type": "string",
            "maxLength": 512,
            "description": "W3C tracestate, carried with traceparent",
        },
    },
    "additionalProperties": {"type": "string"},
}
_DLQ_HEADERS = {
    "type": "object",
    "description": "the original headers first, then these (read the last of a name)",
    "properties": {
        "dlq.error.code": {"type": "string", "description": "a DeadLetterCode"},
        "dlq.error.message": {"type": "string", "maxLength": 1000},
        "dlq.source.topic": {"type": "string"},
        "dlq.source.partition": {"type": "string", "description": "decimal"},
        "dlq.source.offset": {"type": "string", "description": "decimal"},
        "dlq.event_id": _UUID,
        "dlq.original.size": {"type": "string", "description": "set when the value was cut"},
        "dlq.original.key.size": {"type": "string", "description": "set when the key was cut"},
        "dlq.headers.dropped": {"type": "string", "description": "original headers left out"},
        "dlq.invalid_header.key_b64": {
            "type": "string",
            "description": "an original header key that was not UTF-8, base64",
        },
        "dlq.invalid_header.value": {"type": "string"},
    },
    "required": [
        "dlq.error.code",
        "dlq.error.message",
        "dlq.source.topic",
        "dlq.source.partition",
        "dlq.source.offset",
        "dlq.event_id",
    ],
}


def _key(description: str) -> dict[str, Any]:
    return {"kafka": {"key": {"type": "string", "description": description}}}


def _message(model: type[BaseModel], headers: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "name": model.__name__,
        "title": model.__name__,
        "contentType": "application/json",
        "payload": {"$ref": _REF.format(model=model.__name__)},
        "headers": headers,
        "bindings": _key(key),
    }


def asyncapi_document(partitions: int = 6) -> dict[str, Any]:
    """The document, for topics without a prefix (a deployment's prefix goes before every
    address)."""
    topics = Topics()
    sku_key = "the SKU (one SKU's messages keep their order)"
    channels: dict[str, tuple[str, str, list[tuple[type[BaseModel], dict[str, Any], str]]]] = {
        "commands": (
            topics.commands,
            "Commands from upstream systems. Keyed by SKU (ConfigureLocation by its code).",
            [(m, _COMMAND_HEADERS, "the SKU; ConfigureLocation: its code") for m in COMMAND_TYPES],
        ),
        "stockChanged": (
            topics.changed,
            "Every change of a stock position, with its state after the change.",
            [(StockChanged, _EVENT_HEADERS, sku_key)],
        ),
        "lowStock": (
            topics.low_stock,
            "Available stock crossing the position's low-stock threshold, either way.",
            [(LowStock, _EVENT_HEADERS, sku_key), (StockReplenished, _EVENT_HEADERS, sku_key)],
        ),
        "lots": (
            topics.lots,
            "A lot with stock coming close to its expiry date (once), and expiring with "
            "stock left (its free units stop being available).",
            [(LotExpiring, _EVENT_HEADERS, sku_key), (LotExpired, _EVENT_HEADERS, sku_key)],
        ),
        "purchaseOrders": (
            topics.purchase_orders,
            "Every change of a purchase-order line.",
            [(PurchaseOrderLineChanged, _EVENT_HEADERS, "the po_number")],
        ),
        "commandResults": (
            topics.results,
            "One result for every command, correlated by command_id.",
            [
                (CommandAccepted, _EVENT_HEADERS, "the command_id"),
                (CommandRejected, _EVENT_HEADERS, "the command_id"),
            ],
        ),
        "positions": (
            topics.snapshot,
            "Compacted: each position's latest state (the highest version wins). "
            "Bootstrap from it, then follow stock.changed.v1 (docs/operator-commands.md).",
            [(PositionSnapshot, _EVENT_HEADERS, "sku, a NUL character, location (UTF-8)")],
        ),
    }
    used = [m for _, _, messages in channels.values() for m, _, _ in messages]
    _, definitions = models_json_schema(
        [(m, "validation") for m in dict.fromkeys(used)], ref_template=_REF
    )
    messages: dict[str, Any] = {}
    document_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, (address, description, carried) in channels.items():
        document_channels[name] = {
            "address": address,
            "description": description,
            "messages": {
                m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m, _, _ in carried
            },
            "bindings": {"kafka": _topic_binding(address, partitions, name == "positions")},
        }
        for model, headers, key in carried:
            messages[model.__name__] = _message(model, headers, key)
        operations[f"{'receive' if name == 'commands' else 'send'}{name[0].upper()}{name[1:]}"] = {
            "action": "receive" if name == "commands" else "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [
                {"$ref": f"#/channels/{name}/messages/{m.__name__}"} for m, _, _ in carried
            ],
        }
    document_channels["deadLetters"] = {
        "address": topics.dead_letters,
        "description": (
            "Records that could not be read as a command: the original key, bytes and "
            "headers, and where they came from."
        ),
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        "bindings": {"kafka": _topic_binding(topics.dead_letters, partitions, False)},
    }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "DeadLetter",
        "contentType": "application/octet-stream",
        "payload": {"description": "the original record's value, byte for byte (maybe cut)"},
        "headers": _DLQ_HEADERS,
        "bindings": _key("the original record's key"),
    }
    operations["sendDeadLetters"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/deadLetters"},
        "messages": [{"$ref": "#/channels/deadLetters/messages/DeadLetter"}],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "stockworker",
            "version": "1",
            "description": (
                "Stock commands in, stock events out, over Kafka. Every message is JSON "
                "with a `type` discriminator; delivery is at least once (deduplicate "
                "events on event_id). See README.md for the rules."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "KAFKA_BOOTSTRAP_SERVERS of the deployment",
            }
        },
        "channels": document_channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions["$defs"]},
    }


def _topic_binding(address: str, partitions: int, compacted: bool) -> dict[str, Any]:
    binding: dict[str, Any] = {
        "topic": address,
        "partitions": partitions,
        "bindingVersion": "0.5.0",
    }
    if compacted:
        binding["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    return binding
