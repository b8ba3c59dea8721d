"""What a command reads and writes, known before any state is loaded.

The service uses it to lock and load exactly the state a batch needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockworker.contract.commands import (
    AnyCommand,
    CancelPOItem,
    ConfigureItem,
    ConfigureLocation,
    ExpireReservation,
    OrderPOItem,
    PickStock,
    ReceivePOItem,
    ReleaseReservation,
    ReserveStock,
    TransferStock,
    UnreceivePOItem,
)
from stockworker.domain.position import PositionKey
from stockworker.domain.purchasing import PoLineKey


@dataclass(frozen=True, slots=True)
class Footprint:
    positions: tuple[PositionKey, ...] = ()
    po_lines: tuple[PoLineKey, ...] = ()
    reservations: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    # The catalogue entries the command writes (its own entry, for catalogue commands):
    # locked, so two of them for one entry on different partitions take turns.
    configured_locations: tuple[str, ...] = ()
    configured_items: tuple[str, ...] = ()
    # Serial numbers the command names, as (sku, serial): where each is in stock is read.
    serials: tuple[tuple[str, str], ...] = ()
    # SKUs whose stocked positions are read (a ConfigureItem changing tracking).
    stocked_items: tuple[str, ...] = ()


def footprint(command: AnyCommand) -> Footprint:
    if isinstance(command, ConfigureLocation):
        return Footprint(locations=(command.code,), configured_locations=(command.code,))
    if isinstance(command, ConfigureItem):
        return Footprint(
            items=(command.sku,),
            configured_items=(command.sku,),
            stocked_items=(command.sku,) if command.tracking is not None else (),
        )
    serials = command.__dict__.get("serials")
    named = tuple((command.sku, s) for s in serials) if serials else ()
    if isinstance(command, TransferStock):
        return Footprint(
            positions=(
                PositionKey(command.sku, command.from_location),
                PositionKey(command.sku, command.to_location),
            ),
            locations=(command.from_location, command.to_location),
            items=(command.sku,),
            serials=named,
        )
    po_lines: tuple[PoLineKey, ...] = ()
    if isinstance(command, OrderPOItem | ReceivePOItem | UnreceivePOItem | CancelPOItem):
        po_lines = (PoLineKey(command.po_number, command.po_line),)
    reservations: tuple[str, ...] = ()
    if isinstance(command, ReserveStock | ReleaseReservation | ExpireReservation | PickStock):
        reservations = (command.reservation_id,) if command.reservation_id else ()
    return Footprint(
        positions=(PositionKey(command.sku, command.location),),
        po_lines=po_lines,
        reservations=reservations,
        locations=(command.location,),
        items=(command.sku,),
        serials=named,
    )
