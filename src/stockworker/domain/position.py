"""The state of one stock position: one item (SKU) at one location."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple


class PositionKey(NamedTuple):
    sku: str
    location: str


class InvariantViolation(Exception):
    """A position state that must never exist. Raised only on a programming error."""


_EMPTY_PICKS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Position:
    """Quantities of one position. `version` 0 means the position does not exist yet.

    `picks` holds the picked quantity per order reference; its sum is `picked`.
    """

    sku: str
    location: str
    on_hand: int = 0
    reserved: int = 0
    picked: int = 0
    on_order: int = 0
    min_quantity: int = 0
    max_quantity: int = 0
    low_stock_threshold: int = 0
    reorder_quantity: int = 0
    bin: str | None = None
    picks: Mapping[str, int] = field(default_factory=lambda: _EMPTY_PICKS)
    version: int = 0

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.sku, self.location)

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.picked

    @property
    def is_low(self) -> bool:
        """Below its low-stock threshold (a threshold of 0 is never crossed)."""
        return self.available < self.low_stock_threshold

    def check_invariants(self) -> None:
        problems = []
        for name in (
            "on_hand",
            "reserved",
            "picked",
            "on_order",
            "min_quantity",
            "max_quantity",
            "low_stock_threshold",
            "reorder_quantity",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} < 0")
        if self.on_hand < self.reserved + self.picked:
            problems.append("on_hand < reserved + picked")
        if self.min_quantity > self.max_quantity:
            problems.append("min_quantity > max_quantity")
        if sum(self.picks.values()) != self.picked or any(q <= 0 for q in self.picks.values()):
            problems.append("picks do not add up to picked")
        if problems:
            raise InvariantViolation(f"{self.sku}@{self.location}: " + ", ".join(problems))


def new_position(key: PositionKey) -> Position:
    return Position(sku=key.sku, location=key.location)
