"""Command builders shared by the tests: valid by default, override any field."""

from __future__ import annotations

import json
import uuid
from typing import Any

OCCURRED_AT = "2026-11-23T10:00:00+00:00"

_DEFAULTS: dict[str, dict[str, Any]] = {
    "ConfigureStockItem": {"min_quantity": 0, "max_quantity": 100, "low_stock_threshold": 0},
    "OrderPOItem": {"po_number": "PO-1", "po_line": 1, "quantity": 10, "unit_cost": "1.5"},
    "ReceivePOItem": {"po_number": "PO-1", "po_line": 1, "quantity": 10, "unit_cost": "1.5"},
    "UnreceivePOItem": {"po_number": "PO-1", "po_line": 1, "quantity": 1},
    "CancelPOItem": {"po_number": "PO-1", "po_line": 1},
    "ReserveStock": {"reservation_id": "R-1", "quantity": 1, "order_ref": "ORD-1"},
    "ReleaseReservation": {"reservation_id": "R-1"},
    "ExpireReservation": {"reservation_id": "R-1"},
    "ExpireLot": {"lot": "LOT-1", "stage": "expired"},
    "PickStock": {"quantity": 1, "order_ref": "ORD-1"},
    "UnpickStock": {"quantity": 1, "order_ref": "ORD-1"},
    "ShipStock": {"quantity": 1, "order_ref": "ORD-1"},
    "AdjustInventory": {"delta": 1, "reason": "FOUND"},
    "TransferStock": {"from_location": "WH1", "to_location": "WH2", "quantity": 1},
    "ConfigureLocation": {"code": "WH1", "name": "Warehouse 1"},
    "ConfigureItem": {"name": "Item"},
}
# Commands that name no single `location` field.
_NO_LOCATION = {"TransferStock", "ConfigureLocation", "ConfigureItem"}
_NO_SKU = {"ConfigureLocation"}


def command(type_: str, sku: str = "SKU-1", location: str = "WH1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_,
        "command_id": str(uuid.uuid4()),
        "occurred_at": OCCURRED_AT,
    }
    if type_ not in _NO_SKU:
        body["sku"] = sku
    if type_ not in _NO_LOCATION:
        body["location"] = location
    body.update(_DEFAULTS[type_])
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
