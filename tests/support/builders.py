"""Command builders shared by the tests: valid by default, override any field."""

from __future__ import annotations

import json
import uuid
from typing import Any

OCCURRED_AT = "2026-11-23T10:00:00+00:00"


def command(type_: str, sku: str = "SKU-1", location: str = "WH1", **fields: Any) -> dict[str, Any]:
    defaults: dict[str, dict[str, Any]] = {
        "ConfigureStockItem": {"min_quantity": 0, "max_quantity": 100, "low_stock_threshold": 0},
        "ReceivePOItem": {"po_number": "PO-1", "po_line": 1, "quantity": 10, "unit_cost": 1.5},
        "PickStock": {"quantity": 1, "order_ref": "ORD-1"},
        "ShipStock": {"quantity": 1, "order_ref": "ORD-1"},
        "AdjustInventory": {"delta": 1, "reason": "FOUND"},
    }
    body: dict[str, Any] = {
        "type": type_,
        "command_id": str(uuid.uuid4()),
        "occurred_at": OCCURRED_AT,
        "sku": sku,
        "location": location,
        **defaults[type_],
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
