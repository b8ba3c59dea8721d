"""Seeded random streams of mixed commands for the end-to-end and fault tests.

Every reference a command names (purchase-order line, reservation id) belongs to one
SKU, as it does upstream, so all commands about it share a partition and their order
is fixed. Locations are configured by a setup stream that must be applied first.
"""

from __future__ import annotations

import random
from typing import Any

from tests.support.builders import command

LOCATIONS = ("L1", "L2")


def setup_stream() -> list[dict[str, Any]]:
    return [command("ConfigureLocation", code=code, name=code) for code in LOCATIONS]


def mixed_stream(seed: int, count: int, skus: list[str]) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    lines: dict[str, list[str]] = {s: [] for s in skus}
    reservations: dict[str, list[str]] = {s: [] for s in skus}
    bodies = []
    for n in range(count):
        sku = rng.choice(skus)
        location = rng.choice(LOCATIONS)
        order = f"SO-{rng.randrange(4)}"
        roll = rng.random()
        at = {"sku": sku, "location": location}
        if roll < 0.20:
            po = f"PO-{sku}-{n}"
            lines[sku].append(po)
            body = command("ReceivePOItem", **at, po_number=po, quantity=rng.randint(1, 20),
                           unit_cost=rng.choice(["1", "2.5", "0.75"]))  # fmt: skip
        elif roll < 0.26:
            po = f"PO-{sku}-{n}"
            lines[sku].append(po)
            body = command("OrderPOItem", **at, po_number=po, quantity=rng.randint(5, 30))
        elif roll < 0.32 and lines[sku]:
            body = command("ReceivePOItem", **at, po_number=rng.choice(lines[sku]),
                           quantity=rng.randint(1, 15))  # fmt: skip
        elif roll < 0.50:
            body = command("PickStock", **at, quantity=rng.randint(1, 8), order_ref=order)
        elif roll < 0.60:
            body = command("ShipStock", **at, quantity=rng.randint(1, 6), order_ref=order)
        elif roll < 0.70:
            rid = f"R-{sku}-{n}"
            reservations[sku].append(rid)
            backorder = rng.random() < 0.3
            body = command("ReserveStock", **at, reservation_id=rid, order_ref=order,
                           quantity=rng.randint(1, 6), allow_backorder=backorder)  # fmt: skip
        elif roll < 0.74 and reservations[sku]:
            body = command("ReleaseReservation", **at, reservation_id=rng.choice(reservations[sku]))
        elif roll < 0.78 and reservations[sku]:
            body = command("PickStock", **at, reservation_id=rng.choice(reservations[sku]),
                           quantity=rng.randint(1, 4), order_ref=order)  # fmt: skip
        elif roll < 0.81:
            body = command("UnpickStock", **at, quantity=rng.randint(1, 3), order_ref=order)
        elif roll < 0.89:
            source, target = rng.sample(LOCATIONS, 2)
            body = command("TransferStock", sku=sku, from_location=source, to_location=target,
                           quantity=rng.randint(1, 5))  # fmt: skip
        elif roll < 0.92 and lines[sku]:
            body = command("UnreceivePOItem", **at, po_number=rng.choice(lines[sku]),
                           quantity=rng.randint(1, 5))  # fmt: skip
        elif roll < 0.94 and lines[sku]:
            body = command("CancelPOItem", **at, po_number=rng.choice(lines[sku]))
        elif roll < 0.98:
            body = command("AdjustInventory", **at, delta=rng.choice([-3, -1, 1, 2]),
                           reason="CORRECTION")  # fmt: skip
        else:
            body = command("AdjustInventory", **at, delta=..., reason="COUNT",
                           counted_quantity=rng.randint(0, 30))  # fmt: skip
        bodies.append(body)
    return bodies
