"""The AsyncAPI document: every topic of the contract, every message with its schema,
and every reference in it resolving (its drift is checked with the JSON Schemas)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stockworker.contract.commands import COMMAND_TYPES
from stockworker.contract.events import EVENT_TYPES
from stockworker.entrypoints.asyncapi import asyncapi_document
from stockworker.service.topics import Topics


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves() -> None:
    document = asyncapi_document()
    refs = set(_refs(document))
    assert len(refs) > 50
    for ref in refs:
        _resolve(document, ref)


def test_every_topic_and_message_of_the_contract_is_described() -> None:
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == set(Topics().all())
    messages = document["components"]["messages"]
    assert {m.__name__ for m in (*COMMAND_TYPES, *EVENT_TYPES)} | {"DeadLetter"} == set(messages)
    for model in (*COMMAND_TYPES, *EVENT_TYPES):
        payload = _resolve(document, messages[model.__name__]["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == model.__name__


def test_stockworker_receives_commands_and_sends_everything_else() -> None:
    document = asyncapi_document()
    actions = {
        _resolve(document, op["channel"]["$ref"])["address"]: op["action"]
        for op in document["operations"].values()
    }
    topics = Topics()
    assert actions.pop(topics.commands) == "receive"
    assert set(actions.values()) == {"send"}
    snapshot = next(c for c in document["channels"].values() if c["address"] == topics.snapshot)
    assert snapshot["bindings"]["kafka"]["topicConfiguration"] == {"cleanup.policy": ["compact"]}
