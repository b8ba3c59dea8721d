"""The stock state a command is decided against, and an in-memory copy of it.

The service loads the part of the state a batch touches into a `StockState`, decides
each command against it and applies each outcome before deciding the next command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from stockworker.domain.catalog import Item, Location
from stockworker.domain.outcome import Outcome
from stockworker.domain.position import Position, PositionKey, new_position
from stockworker.domain.purchasing import PoLine, PoLineKey


class StockView(Protocol):
    def position(self, key: PositionKey) -> Position:
        """The position, or a new one (version 0) when it does not exist."""

    def po_line(self, key: PoLineKey) -> PoLine | None: ...

    def location(self, code: str) -> Location | None: ...

    def item(self, sku: str) -> Item | None: ...

    def reservation_owner(self, reservation_id: str) -> PositionKey | None:
        """The position holding an open reservation with this id."""

    def serial_location(self, sku: str, serial: str) -> str | None:
        """Where a serial number of `sku` is in stock, if anywhere (among those loaded)."""

    def has_stock(self, sku: str) -> bool:
        """Whether any position of `sku` holds stock (for those loaded as `stocked`)."""


@dataclass
class StockState:
    positions: dict[PositionKey, Position] = field(default_factory=dict)
    po_lines: dict[PoLineKey, PoLine] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    reservation_owners: dict[str, PositionKey] = field(default_factory=dict)
    # Serial numbers in stock, by (sku, serial): their location.
    serial_locations: dict[tuple[str, str], str] = field(default_factory=dict)
    # Positions (sku, location) that held stock when loaded, for the SKUs asked about.
    stocked: set[PositionKey] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        positions: Iterable[Position] = (),
        po_lines: Iterable[PoLine] = (),
        locations: Iterable[Location] = (),
        items: Iterable[Item] = (),
        other_reservations: Iterable[tuple[str, PositionKey]] = (),
        serials_elsewhere: Iterable[tuple[str, str, str]] = (),
        stocked: Iterable[PositionKey] = (),
    ) -> StockState:
        state = cls(
            positions={p.key: p for p in positions},
            po_lines={line.key: line for line in po_lines},
            locations={loc.code: loc for loc in locations},
            items={i.sku: i for i in items},
            reservation_owners=dict(other_reservations),
            serial_locations={(sku, serial): loc for sku, serial, loc in serials_elsewhere},
            stocked=set(stocked),
        )
        for p in state.positions.values():
            for reservation_id in p.reservations:
                state.reservation_owners[reservation_id] = p.key
            for h in p.holdings.values():
                if h.kind == "serial":
                    state.serial_locations[p.sku, h.id] = p.location
        return state

    def position(self, key: PositionKey) -> Position:
        return self.positions.get(key) or new_position(key)

    def po_line(self, key: PoLineKey) -> PoLine | None:
        return self.po_lines.get(key)

    def location(self, code: str) -> Location | None:
        return self.locations.get(code)

    def item(self, sku: str) -> Item | None:
        return self.items.get(sku)

    def reservation_owner(self, reservation_id: str) -> PositionKey | None:
        return self.reservation_owners.get(reservation_id)

    def serial_location(self, sku: str, serial: str) -> str | None:
        return self.serial_locations.get((sku, serial))

    def has_stock(self, sku: str) -> bool:
        positions = self.positions
        if any(p.on_hand for p in positions.values() if p.sku == sku):
            return True
        return any(k.sku == sku and k not in positions for k in self.stocked)

    def put_position(self, position: Position) -> None:
        """Store a position, keeping the owners of its reservations and serials in step."""
        before = self.positions.get(position.key)
        if before is not None:
            for reservation_id in before.reservations.keys() - position.reservations:
                del self.reservation_owners[reservation_id]
            if before.holdings is not position.holdings:
                for h in before.holdings.values():
                    if h.kind == "serial" and h.id not in position.holdings:
                        del self.serial_locations[position.sku, h.id]
        for reservation_id in position.reservations:
            self.reservation_owners[reservation_id] = position.key
        if position.holdings and (before is None or before.holdings is not position.holdings):
            for h in position.holdings.values():
                if h.kind == "serial":
                    self.serial_locations[position.sku, h.id] = position.location
        self.positions[position.key] = position

    def apply(self, outcome: Outcome) -> None:
        for change in outcome.positions:
            self.put_position(change.after)
        if outcome.po_line is not None:
            self.po_lines[outcome.po_line.after.key] = outcome.po_line.after
        if outcome.location is not None:
            self.locations[outcome.location.code] = outcome.location
        if outcome.item is not None:
            self.items[outcome.item.sku] = outcome.item
