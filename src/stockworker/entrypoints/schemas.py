"""JSON Schema files generated from the pydantic models (`stockworker schemas`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from stockworker.contract.commands import COMMAND_TYPES, Command
from stockworker.contract.events import (
    EVENT_TYPES,
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
from stockworker.entrypoints.asyncapi import asyncapi_document


def _topic_union(title: str, types: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(types[0] if len(types) == 1 else _union(types))
    schema = adapter.json_schema()
    schema["title"] = title
    return schema


def _union(types: tuple[type[BaseModel], ...]) -> Any:
    from functools import reduce
    from operator import or_
    from typing import Annotated

    from pydantic import Field

    return Annotated[reduce(or_, types), Field(discriminator="type")]


def expected_schemas() -> dict[str, dict[str, Any]]:
    """File name (relative to schemas/) -> schema."""
    files: dict[str, dict[str, Any]] = {}
    for model in (*COMMAND_TYPES, *EVENT_TYPES):
        folder = "commands" if model in COMMAND_TYPES else "events"
        files[f"{folder}/{model.__name__}.json"] = model.model_json_schema()
    files["topics/stock.commands.v1.json"] = {
        **TypeAdapter(Command).json_schema(),
        "title": "stock.commands.v1",
    }
    files["topics/stock.changed.v1.json"] = _topic_union("stock.changed.v1", (StockChanged,))
    files["topics/stock.low-stock.v1.json"] = _topic_union(
        "stock.low-stock.v1", (LowStock, StockReplenished)
    )
    files["topics/stock.purchase-orders.v1.json"] = _topic_union(
        "stock.purchase-orders.v1", (PurchaseOrderLineChanged,)
    )
    files["topics/stock.command-results.v1.json"] = _topic_union(
        "stock.command-results.v1", (CommandAccepted, CommandRejected)
    )
    files["topics/stock.positions.v1.json"] = _topic_union(
        "stock.positions.v1", (PositionSnapshot,)
    )
    files["topics/stock.lots.v1.json"] = _topic_union("stock.lots.v1", (LotExpiring, LotExpired))
    files["asyncapi.json"] = asyncapi_document()
    return files


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(out: str | Path, check: bool = False) -> list[str]:
    """Write (or with check, only compare) the schema files; return those that differ."""
    root = Path(out)
    differ = []
    for name, schema in expected_schemas().items():
        path = root / name
        text = render(schema)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        differ.append(name)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return differ
