"""A small reference model of the stock rules, written apart from the domain code.

The end-to-end tests compute expected positions and outcomes with it and compare them
with what the real worker stored and published.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RefPosition:
    on_hand: int = 0
    picked: int = 0
    on_order: int = 0
    picks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    version: int = 0


class ReferenceModel:
    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], RefPosition] = {}
        self.outcomes: dict[str, bool] = {}  # command_id -> accepted

    def apply(self, body: dict[str, Any]) -> bool:
        key = (body["sku"], body["location"])
        p = self.positions.get(key)
        kind = body["type"]
        accepted = True
        if kind == "ReceivePOItem":
            p = p or RefPosition()
            p.on_hand += body["quantity"]
            p.on_order = max(0, p.on_order - body["quantity"])
        elif kind == "PickStock":
            if p is None or p.on_hand - p.picked < body["quantity"]:
                accepted = False
            else:
                p.picked += body["quantity"]
                p.picks[body["order_ref"]] += body["quantity"]
        elif kind == "ShipStock":
            if p is None or p.picks.get(body["order_ref"], 0) < body["quantity"]:
                accepted = False
            else:
                p.on_hand -= body["quantity"]
                p.picked -= body["quantity"]
                p.picks[body["order_ref"]] -= body["quantity"]
        elif kind == "AdjustInventory":
            p = p or RefPosition()
            new = (
                body["counted_quantity"]
                if "counted_quantity" in body
                else p.on_hand + body["delta"]
            )
            if new < p.picked:
                accepted = False
            else:
                p.on_hand = new
        else:
            raise ValueError(kind)
        if accepted:
            assert p is not None
            p.version += 1
            self.positions[key] = p
        self.outcomes[body["command_id"]] = accepted
        return accepted

    def snapshot(self) -> dict[tuple[str, str], tuple[int, int, int, dict[str, int]]]:
        return {
            k: (p.on_hand, p.picked, p.version, {o: q for o, q in p.picks.items() if q})
            for k, p in self.positions.items()
        }
