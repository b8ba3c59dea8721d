"""The state of one stock position: one item (SKU) at one location, with its reservations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple

from stockworker.domain.valuation import ZERO, average_cost


class PositionKey(NamedTuple):
    sku: str
    location: str


class InvariantViolation(Exception):
    """A state that must never exist. Raised only on a programming error."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Stock promised to an order at one position.

    `quantity` is held on the shelf (part of the position's `reserved`); `back_ordered`
    is promised but not yet in stock, filled by later stock in `sequence` order.
    """

    reservation_id: str
    order_ref: str
    quantity: int
    back_ordered: int = 0
    expires_at: datetime | None = None
    sequence: int = 0

    @property
    def total(self) -> int:
        return self.quantity + self.back_ordered


_EMPTY_PICKS: Mapping[str, int] = MappingProxyType({})
_EMPTY_RESERVATIONS: Mapping[str, Reservation] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Holding:
    """Tracked stock within a position: one serial number (on_hand 1) or one lot.

    `picks` holds what of it is picked, per order reference; the rest is free.
    `sequence` orders holdings by arrival at the position (FEFO's tie-break).
    """

    kind: str  # Tracking.SERIAL or Tracking.LOT
    id: str
    on_hand: int
    picks: Mapping[str, int] = field(default_factory=lambda: _EMPTY_PICKS)
    expires_on: date | None = None
    sequence: int = 0
    # A lot reported as coming close to its expiry (LotExpiring), and one that expired:
    # its free units are no longer available (they stay on hand until adjusted out).
    warned: bool = False
    expired: bool = False

    @property
    def picked(self) -> int:
        return sum(self.picks.values())

    @property
    def free(self) -> int:
        return self.on_hand - self.picked


_EMPTY_HOLDINGS: Mapping[str, Holding] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Position:
    """Quantities of one position. `version` 0 means the position does not exist yet.

    `picks` holds the picked quantity per order reference (its sum is `picked`);
    `reservations` the open reservations (their sums are `reserved` and `back_ordered`).
    `stock_value` is the value of on_hand at moving-average cost.
    """

    sku: str
    location: str
    on_hand: int = 0
    reserved: int = 0
    picked: int = 0
    on_order: int = 0
    back_ordered: int = 0
    # Free units of expired lots: on hand, not available (0 for untracked items).
    expired: int = 0
    stock_value: Decimal = ZERO
    min_quantity: int = 0
    max_quantity: int = 0
    low_stock_threshold: int = 0
    reorder_quantity: int = 0
    bin: str | None = None
    preferred_supplier: str | None = None
    picks: Mapping[str, int] = field(default_factory=lambda: _EMPTY_PICKS)
    reservations: Mapping[str, Reservation] = field(default_factory=lambda: _EMPTY_RESERVATIONS)
    # The serials or lots of a tracked item's position, by id; empty for untracked items.
    holdings: Mapping[str, Holding] = field(default_factory=lambda: _EMPTY_HOLDINGS)
    version: int = 0

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.sku, self.location)

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.picked - self.expired

    @property
    def unit_cost(self) -> Decimal:
        """Moving-average cost per base unit (0 when nothing is on hand)."""
        return average_cost(self.stock_value, self.on_hand)

    @property
    def is_low(self) -> bool:
        """Below its low-stock threshold (a threshold of 0 is never crossed)."""
        return self.available < self.low_stock_threshold

    def check_invariants(self) -> None:
        # Runs for every change: the names are looked at only when one is negative.
        negative = (
            min(
                self.on_hand,
                self.reserved,
                self.picked,
                self.on_order,
                self.back_ordered,
                self.expired,
                self.min_quantity,
                self.max_quantity,
                self.low_stock_threshold,
                self.reorder_quantity,
            )
            < 0
            or self.stock_value < 0
        )
        problems = [f"{name} < 0" for name in _NON_NEGATIVE if negative and getattr(self, name) < 0]
        if self.on_hand < self.reserved + self.picked:
            problems.append("on_hand < reserved + picked")
        if self.min_quantity > self.max_quantity:
            problems.append("min_quantity > max_quantity")
        if sum(self.picks.values()) != self.picked or any(q <= 0 for q in self.picks.values()):
            problems.append("picks do not add up to picked")
        reservations = self.reservations.values()
        if sum(r.quantity for r in reservations) != self.reserved:
            problems.append("reservations do not add up to reserved")
        if sum(r.back_ordered for r in reservations) != self.back_ordered:
            problems.append("reservations do not add up to back_ordered")
        if any(r.quantity < 0 or r.back_ordered < 0 or r.total == 0 for r in reservations):
            problems.append("a reservation holds nothing or a negative quantity")
        if self.back_ordered and self.available > 0:
            problems.append("back orders wait while stock is available")
        if self.on_hand == 0 and self.stock_value != 0:
            problems.append("value without stock")
        if problems:
            raise InvariantViolation(f"{self.sku}@{self.location}: " + ", ".join(problems))

    def check_holdings(self) -> None:
        """A tracked position's quantities are the sums of its holdings'."""
        problems = []
        holdings = self.holdings.values()
        if sum(h.on_hand for h in holdings) != self.on_hand:
            problems.append("holdings do not add up to on_hand")
        picks: dict[str, int] = {}
        for h in holdings:
            if h.on_hand <= 0 or h.picked > h.on_hand or any(q <= 0 for q in h.picks.values()):
                problems.append(f"holding {h.id!r} holds nothing or more picked than on hand")
            if h.kind == "serial" and h.on_hand != 1:
                problems.append(f"serial {h.id!r} is not one unit")
            for order, quantity in h.picks.items():
                picks[order] = picks.get(order, 0) + quantity
        if picks != dict(self.picks):
            problems.append("holdings' picks do not add up to picks")
        if self.expired != sum(h.free for h in holdings if h.expired):
            problems.append("expired is not the free units of its expired lots")
        if self.available < 0:
            problems.append("more reserved than unexpired stock")
        if problems:
            raise InvariantViolation(f"{self.sku}@{self.location}: " + ", ".join(problems))


_NON_NEGATIVE = (
    "on_hand",
    "reserved",
    "picked",
    "on_order",
    "back_ordered",
    "expired",
    "stock_value",
    "min_quantity",
    "max_quantity",
    "low_stock_threshold",
    "reorder_quantity",
)


def new_position(key: PositionKey) -> Position:
    return Position(sku=key.sku, location=key.location)
